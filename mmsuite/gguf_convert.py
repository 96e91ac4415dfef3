"""GGUF language models as Hugging Face checkpoint directories, converted once and cached.

`gguf_source(path)` says whether `mmsuite.load` got a GGUF (a .gguf file, or a directory with
exactly one and no config.json); `converted_dir(file)` returns a cached directory with
config.json, generation_config.json, model.safetensors and (byte-level BPE vocabularies)
tokenizer.json + tokenizer_config.json, which the ordinary language-model loader reads.
Mapping follows llama.cpp's convert_hf_to_gguf.py run backwards: tensor names, the Q/K row
permutation of Llama-architecture files, the config keys and the tokenizer metadata."""
import hashlib
import json
import os
import re
import shutil
import struct
import tempfile
import warnings

import numpy as np

from .errors import ConfigError, FormatError, UnsupportedError
from .gguf import read_gguf

__all__ = ["gguf_source", "converted_dir", "convert_gguf", "cache_root"]

# Bump when the converted directory's content changes, so stale caches are not reused.
CONVERTER_VERSION = 1

_ARCHS = {"llama": ("llama", "LlamaForCausalLM"), "qwen2": ("qwen2", "Qwen2ForCausalLM")}
_GLOBAL_NAMES = {"token_embd": "model.embed_tokens", "output_norm": "model.norm", "output": "lm_head"}
_BLOCK_NAMES = {
    "attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm",
    "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj",
}
_BLOCK_RE = re.compile(r"blk\.(\d+)\.([a-z_]+)\.(weight|bias)$")
_GLOBAL_RE = re.compile(r"([a-z_]+)\.(weight|bias)$")


# ==== entry points =================================================================================

def gguf_source(path):
    """The GGUF file `path` names (a .gguf file, or a directory without config.json holding
    exactly one .gguf), else None. ConfigError for a directory with several."""
    p = os.fspath(path)
    if os.path.isfile(p) and p.lower().endswith(".gguf"):
        return p
    if not os.path.isdir(p) or os.path.exists(os.path.join(p, "config.json")):
        return None
    found = sorted(e for e in os.listdir(p) if e.lower().endswith(".gguf") and os.path.isfile(os.path.join(p, e)))
    if len(found) > 1:
        raise ConfigError(f"{p}: holds {len(found)} GGUF files ({', '.join(found)}); pass the one to load")
    return os.path.join(p, found[0]) if found else None


def cache_root():
    """$MMSUITE_CACHE/gguf (default ~/.cache/mmsuite/gguf)."""
    root = os.environ.get("MMSUITE_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "mmsuite")
    return os.path.join(root, "gguf")


def converted_dir(gguf_path):
    """A checkpoint directory for the GGUF file: from the cache when the file (path, size,
    mtime) was converted before, else converted now into a temporary directory that is renamed
    into place, so a crash or a concurrent caller never sees a half-written one."""
    src = os.path.realpath(os.fspath(gguf_path))
    st = os.stat(src)
    key = hashlib.sha256(f"{CONVERTER_VERSION}\0{src}\0{st.st_size}\0{st.st_mtime_ns}".encode()).hexdigest()[:20]
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", os.path.splitext(os.path.basename(src))[0])[:80]
    final = os.path.join(cache_root(), f"{stem}-{key}")
    if os.path.isfile(os.path.join(final, "config.json")):
        return final
    os.makedirs(cache_root(), exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{stem}-", dir=cache_root())
    os.chmod(tmp, 0o755)
    try:
        convert_gguf(src, tmp)
        if os.path.isdir(final):  # left by a converter version that wrote in place
            shutil.rmtree(final)
        os.rename(tmp, final)
    except OSError:
        if not os.path.isfile(os.path.join(final, "config.json")):  # not a lost race: a real failure
            raise
    finally:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def convert_gguf(gguf_path, out_dir):
    """Write the Hugging Face checkpoint files of a GGUF language model into out_dir."""
    g = read_gguf(gguf_path)
    md = g.metadata
    arch = md.get("general.architecture")
    if arch not in _ARCHS:
        raise UnsupportedError(f"{g.path}: general.architecture {arch!r} is not supported "
                               f"(supported: {', '.join(sorted(_ARCHS))})")
    config = _model_config(g, arch)
    names = _tensor_names(g, config)
    _write_safetensors(os.path.join(out_dir, "model.safetensors"), g, names, arch, config)
    gen = {"bos_token_id": config["bos_token_id"], "eos_token_id": _eos_ids(md)}
    _write_json(os.path.join(out_dir, "config.json"), config)
    _write_json(os.path.join(out_dir, "generation_config.json"), {k: v for k, v in gen.items() if v is not None})
    tok = _tokenizer_files(g, config)
    if tok is None:
        return
    for name, content in tok.items():
        _write_json(os.path.join(out_dir, name), content)


def _write_json(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, indent=1)


# ==== config =======================================================================================

def _int_key(g, key, default=None):
    v = g.metadata.get(key, default)
    if isinstance(v, np.ndarray):  # per-layer values (llama.cpp writes arrays for some models)
        if v.size == 0 or not np.all(v == v.flat[0]):
            raise UnsupportedError(f"{g.path}: {key} differs between layers ({v.tolist()}), which is not supported")
        v = v.flat[0]
    if v is None:
        raise ConfigError(f"{g.path}: metadata key {key} is missing")
    if isinstance(v, (bool, float, str, list)) or int(v) != v:
        raise ConfigError(f"{g.path}: metadata key {key} must be an integer, got {v!r}")
    return int(v)


def _float_key(g, key, default):
    v = g.metadata.get(key, default)
    if isinstance(v, (bool, str, list, np.ndarray)):
        raise ConfigError(f"{g.path}: metadata key {key} must be a number, got {v!r}")
    return float(v)


def _model_config(g, arch):
    a = arch + "."
    hidden = _int_key(g, a + "embedding_length")
    heads = _int_key(g, a + "attention.head_count")
    kv_heads = _int_key(g, a + "attention.head_count_kv", heads)
    if heads <= 0 or kv_heads <= 0 or heads % kv_heads:
        raise ConfigError(f"{g.path}: {heads} attention heads cannot share {kv_heads} key/value heads")
    head_dim = _int_key(g, a + "attention.key_length", hidden // heads)
    if _int_key(g, a + "attention.value_length", head_dim) != head_dim:
        raise UnsupportedError(f"{g.path}: key and value head sizes differ, which is not supported")
    rot = _int_key(g, a + "rope.dimension_count", head_dim)
    if rot != head_dim:
        raise UnsupportedError(f"{g.path}: rotary embedding on {rot} of {head_dim} head dimensions is not supported")
    if "rope_freqs.weight" in g.tensors:
        raise UnsupportedError(f"{g.path}: tensor rope_freqs.weight (Llama 3.1 style rope scaling) is not supported")
    rope_scaling = None
    kind = g.metadata.get(a + "rope.scaling.type", "none")
    if kind == "linear":
        rope_scaling = {"rope_type": "linear", "factor": _float_key(g, a + "rope.scaling.factor", 1.0)}
    elif kind != "none":
        raise UnsupportedError(f"{g.path}: {a}rope.scaling.type {kind!r} is not supported (supported: none, linear)")
    embd = g.tensors.get("token_embd.weight")
    if embd is None or len(embd.shape) != 2:
        raise FormatError(f"{g.path}: no 2-D token_embd.weight tensor")
    vocab = embd.shape[0]  # the tokenizer may list fewer tokens (padded embeddings)
    if _int_key(g, a + "vocab_size", vocab) != vocab:
        raise FormatError(f"{g.path}: {a}vocab_size {g.metadata[a + 'vocab_size']} differs from the "
                          f"{vocab} rows of token_embd.weight")
    model_type, cls = _ARCHS[arch]
    bos, eos = g.metadata.get("tokenizer.ggml.bos_token_id"), g.metadata.get("tokenizer.ggml.eos_token_id")
    cfg = {
        "architectures": [cls], "model_type": model_type, "hidden_act": "silu",
        "hidden_size": hidden, "intermediate_size": _int_key(g, a + "feed_forward_length"),
        "num_hidden_layers": _int_key(g, a + "block_count"),
        "num_attention_heads": heads, "num_key_value_heads": kv_heads, "head_dim": head_dim,
        "max_position_embeddings": _int_key(g, a + "context_length", 2048),
        "rms_norm_eps": _float_key(g, a + "attention.layer_norm_rms_epsilon", 1e-6),
        "rope_theta": _float_key(g, a + "rope.freq_base", 10000.0), "rope_scaling": rope_scaling,
        "vocab_size": vocab, "tie_word_embeddings": "output.weight" not in g.tensors,
        "bos_token_id": None if bos is None else int(bos), "eos_token_id": None if eos is None else int(eos),
        "torch_dtype": "float32",
    }
    if arch == "llama":
        cfg["attention_bias"] = "blk.0.attn_q.bias" in g.tensors
        cfg["mlp_bias"] = False
    else:
        cfg["use_sliding_window"] = False
    return cfg


def _eos_ids(md):
    """eos plus the end-of-turn token llama.cpp stops on, when the file names one."""
    ids = [int(md[k]) for k in ("tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id") if k in md]
    ids = list(dict.fromkeys(ids))
    return ids[0] if len(ids) == 1 else (ids or None)


# ==== tensors ======================================================================================

def _tensor_names(g, config):
    """GGUF tensor name -> Hugging Face name, for every tensor; UnsupportedError for others."""
    out = {}
    n_layers = config["num_hidden_layers"]
    for name in g.tensors:
        m = _BLOCK_RE.match(name)
        if m and int(m.group(1)) < n_layers and m.group(2) in _BLOCK_NAMES:
            out[name] = f"model.layers.{m.group(1)}.{_BLOCK_NAMES[m.group(2)]}.{m.group(3)}"
            continue
        m = _GLOBAL_RE.match(name)
        if m and m.group(1) in _GLOBAL_NAMES:
            out[name] = f"{_GLOBAL_NAMES[m.group(1)]}.{m.group(2)}"
            continue
        raise UnsupportedError(f"{g.path}: tensor {name!r} has no Hugging Face {config['model_type']} counterpart")
    return out


def unpermute_rows(w, n_head):
    """Undo llama.cpp's permute(w, n_head) of Q/K rows: GGUF stores each head's rotary pairs
    interleaved (ggml's rope); Hugging Face Llama keeps the two halves apart (rotate_half)."""
    half = w.shape[0] // n_head // 2
    return w.reshape(n_head, half, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _hf_tensor(g, name, arch, config):
    w = g.tensor(name)
    if arch == "llama" and (".attn_q." in name or ".attn_k." in name):
        w = unpermute_rows(w, config["num_attention_heads"] if ".attn_q." in name else config["num_key_value_heads"])
    return w


def _write_safetensors(path, g, names, arch, config):
    """model.safetensors, written one tensor at a time: BF16 tensors stay BF16 (exact), every
    other type is stored as the float32 values it dequantizes to (also exact)."""
    header, off = {}, 0
    order = sorted(names, key=lambda n: names[n])
    for name in order:
        t = g.tensors[name]
        dtype, size = ("BF16", 2) if t.type_name == "BF16" else ("F32", 4)
        nbytes = int(np.prod(t.shape, dtype=np.int64)) * size
        header[names[name]] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [off, off + nbytes]}
        off += nbytes
    header["__metadata__"] = {"format": "pt", "source": "gguf"}
    hb = json.dumps(header).encode()
    hb += b" " * (-len(hb) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hb)) + hb)
        for name in order:
            w = _hf_tensor(g, name, arch, config)
            if header[names[name]]["dtype"] == "BF16":
                w = (w.view(np.uint32) >> 16).astype("<u2")
            f.write(np.ascontiguousarray(w).tobytes())


# ==== tokenizer ====================================================================================

def _bytes_to_unicode():
    """GPT-2's byte -> printable character table (byte-level BPE spells tokens in it)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


_GPT2_SPLIT = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
_LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
                 r"\s*[\r\n]+|\s+(?!\S)|\s+")
_QWEN2_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
                r"\s*[\r\n]+|\s+(?!\S)|\s+")
_BYTE_LEVEL = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
_BYTE_LEVEL_NO_REGEX = {**_BYTE_LEVEL, "use_regex": False}


def _split(regex):
    return {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": regex}, "behavior": "Isolated", "invert": False}, _BYTE_LEVEL_NO_REGEX]}


def _pre(pre_tokenizer, normalizer=None, ignore_merges=False):
    return {"normalizer": normalizer, "pre_tokenizer": pre_tokenizer, "ignore_merges": ignore_merges}


# tokenizer.ggml.pre -> the parts of the original tokenizer.json it stands for (llama.cpp's
# llama-vocab.cpp lists the regexes behind each name; Llama 3 also skips merges for whole-word
# tokens there and in its tokenizer.json; Qwen2's tokenizer.json normalizes to NFC).
_PRE_TOKENIZERS = {
    **{k: _pre(_BYTE_LEVEL) for k in ("default", "gpt-2", "gpt2", "olmo")},
    **{k: _pre({"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": True}, _BYTE_LEVEL]})
       for k in ("smollm", "starcoder", "refact", "codeshell")},
    **{k: _pre(_split(_LLAMA3_SPLIT), ignore_merges=True) for k in ("llama3", "llama-v3", "llama-bpe", "smaug-bpe")},
    **{k: _pre(_split(_QWEN2_SPLIT), {"type": "NFC"}) for k in ("qwen2", "deepseek-r1-qwen")},
}
_CONTROL, _USER_DEFINED = 3, 4  # llama.cpp token types


def _tokenizer_files(g, config):
    """{file name: JSON} for tokenizer.json and tokenizer_config.json, or None (with a warning
    saying why) when the file has no tokenizer mmsuite can rebuild."""
    md = g.metadata
    kind, pre = md.get("tokenizer.ggml.model"), md.get("tokenizer.ggml.pre", "default")
    if kind != "gpt2" or pre not in _PRE_TOKENIZERS:
        what = (f"tokenizer.ggml.pre {pre!r}" if kind == "gpt2" else f"tokenizer.ggml.model {kind!r}" if kind
                else "no tokenizer.ggml.model")
        warnings.warn(f"{g.path}: {what} is not supported (byte-level BPE with pre-tokenizers "
                      f"{', '.join(sorted(_PRE_TOKENIZERS))}); the model loads without a tokenizer: "
                      "pass token ids, or tokenizer=", stacklevel=4)
        return None
    tokens = md.get("tokenizer.ggml.tokens")
    merges = md.get("tokenizer.ggml.merges")
    if not isinstance(tokens, list) or not isinstance(merges, list):
        raise FormatError(f"{g.path}: a gpt2 tokenizer needs tokenizer.ggml.tokens and tokenizer.ggml.merges string arrays")
    types = md.get("tokenizer.ggml.token_type")
    types = [1] * len(tokens) if types is None else [int(t) for t in types]
    if len(types) != len(tokens):
        raise FormatError(f"{g.path}: {len(types)} token types for {len(tokens)} tokens")
    spelling = _bytes_to_unicode()
    alphabet = set(spelling.values())
    vocab = {}
    for i, tok in enumerate(tokens):
        key = tok if set(tok) <= alphabet else "".join(spelling[b] for b in tok.encode("utf-8"))
        vocab.setdefault(key, i)
    added = []
    for i, (tok, ty) in enumerate(zip(tokens, types)):
        # A control token spelled outside the byte alphabet is a llama.cpp mislabel (as transformers decides).
        if (ty == _CONTROL and set(tok) <= alphabet) or (ty == _USER_DEFINED and tok in vocab):
            added.append({"id": i, "content": tok, "single_word": False, "lstrip": False, "rstrip": False,
                          "normalized": False, "special": ty == _CONTROL})
    tokenizer = {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
        "normalizer": _PRE_TOKENIZERS[pre]["normalizer"], "pre_tokenizer": _PRE_TOKENIZERS[pre]["pre_tokenizer"],
        "post_processor": {**_BYTE_LEVEL, "trim_offsets": False},
        "decoder": _BYTE_LEVEL,
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
                  "ignore_merges": _PRE_TOKENIZERS[pre]["ignore_merges"],
                  "vocab": vocab, "merges": merges},
    }
    tok_config = {"model_max_length": config["max_position_embeddings"],
                  "add_bos_token": bool(md.get("tokenizer.ggml.add_bos_token", False)),
                  "add_eos_token": bool(md.get("tokenizer.ggml.add_eos_token", False))}
    for name, key in (("bos_token", "bos_token_id"), ("eos_token", "eos_token_id"),
                      ("unk_token", "unknown_token_id"), ("pad_token", "padding_token_id")):
        i = md.get("tokenizer.ggml." + key)
        if i is not None:
            if not 0 <= int(i) < len(tokens):
                raise FormatError(f"{g.path}: tokenizer.ggml.{key} {i} is outside the {len(tokens)}-token vocabulary")
            tok_config[name] = tokens[int(i)]
    if isinstance(md.get("tokenizer.chat_template"), str):
        tok_config["chat_template"] = md["tokenizer.chat_template"]
    return {"tokenizer.json": tokenizer, "tokenizer_config.json": tok_config}
