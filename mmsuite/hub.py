"""Resolve a model argument to a local checkpoint directory.

Accepted: a directory path, or a Hugging Face hub id ("org/name", optionally "org/name@revision")
found in the local Hugging Face cache ($HF_HUB_CACHE, else $HF_HOME/hub, else
~/.cache/huggingface/hub; layout models--ORG--NAME/snapshots/REV/). mmsuite never downloads:
a missing id raises ModelNotFoundError saying where it looked."""
import os

from .errors import ModelNotFoundError


def hub_cache_dirs():
    dirs = []
    if os.environ.get("HF_HUB_CACHE"):
        dirs.append(os.environ["HF_HUB_CACHE"])
    if os.environ.get("HUGGINGFACE_HUB_CACHE"):
        dirs.append(os.environ["HUGGINGFACE_HUB_CACHE"])
    home = os.environ.get("HF_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "huggingface")
    dirs.append(os.path.join(home, "hub"))
    seen, out = set(), []
    for d in dirs:
        if d not in seen:
            seen.add(d)
            out.append(d)
    return out


def _snapshot(repo_dir, revision):
    snaps = os.path.join(repo_dir, "snapshots")
    if not os.path.isdir(snaps):
        return None
    if revision:
        ref = os.path.join(repo_dir, "refs", revision)
        if os.path.isfile(ref):
            with open(ref) as f:
                revision = f.read().strip()
        cand = os.path.join(snaps, revision)
        return cand if os.path.isdir(cand) else None
    ref = os.path.join(repo_dir, "refs", "main")
    if os.path.isfile(ref):
        with open(ref) as f:
            cand = os.path.join(snaps, f.read().strip())
        if os.path.isdir(cand):
            return cand
    entries = [os.path.join(snaps, e) for e in os.listdir(snaps)]
    entries = [e for e in entries if os.path.isdir(e)]
    return max(entries, key=os.path.getmtime) if entries else None


def resolve_model_path(model) -> str:
    """Local directory for `model` (a path or a cached hub id); ModelNotFoundError otherwise."""
    model = os.fspath(model)
    if os.path.isdir(model):
        return model
    if os.path.exists(model):
        raise ModelNotFoundError(f"{model}: expected a checkpoint directory, got a file")
    repo, _, revision = model.partition("@")
    looks_like_id = repo.count("/") == 1 and not repo.startswith(("/", ".")) and all(repo.split("/"))
    if not looks_like_id:
        raise ModelNotFoundError(f"{model}: no such checkpoint directory")
    searched = []
    for cache in hub_cache_dirs():
        repo_dir = os.path.join(cache, "models--" + repo.replace("/", "--"))
        searched.append(repo_dir)
        if os.path.isdir(repo_dir):
            snap = _snapshot(repo_dir, revision or None)
            if snap:
                return snap
    raise ModelNotFoundError(
        f"{model}: not a local directory and not in the Hugging Face cache (looked in {', '.join(searched)}). "
        "mmsuite does not download models: fetch it first (e.g. `huggingface-cli download "
        f"{repo}`) or pass a checkpoint directory.")
