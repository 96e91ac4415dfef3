"""Leak check over load -> run -> unload cycles of every model family (issue 7 part 1).

Each family is loaded, run and unloaded CYCLES times (plus error paths: a truncated checkpoint,
a bad config, bad inputs). Two independent checks:

1. mmsuite's C allocator counts every block it hands out (mmsuite._C.memory_stats()): after the
   first cycle (which may fill process-wide caches), further cycles must not change the live
   block count or bytes -- a leak of even one block per cycle fails.
2. Run under tools/leak_check.sh, the process has LeakSanitizer (the ASan build of the
   extension, detect_leaks=1): at exit it reports unreachable heap blocks; the shell script fails
   when any reported leak has a frame inside mmsuite's extension module (CPython's own exit-time
   allocations are not ours and are ignored).

Usage: python tools/leak_check.py [--cycles N]  (exit status 1 on a leak)."""
import argparse
import gc
import glob
import os
import shutil
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)  # the tree's mmsuite (the sanitized copy when run by leak_check.sh)

import mmsuite  # noqa: E402
from mmsuite import _C  # noqa: E402
from mmsuite.tokenizer import load_tokenizer  # noqa: E402

DATA = os.path.join(ROOT, "tests", "data")
CONF = os.path.join(DATA, "conformance")
WEIGHTS = os.path.join(ROOT, "mmsuite", "weights")
IMG = np.full((48, 40, 3), 120, np.uint8)
PNG = os.path.join(CONF, "clip", "tiny_quickgelu", "chelsea_96x64.png")


def expect_error(fn):
    try:
        fn()
    except Exception:  # noqa: BLE001 -- any clean exception; the point is what it leaves behind
        return
    raise AssertionError("expected an exception")


def contrastive(path, case=None):
    """case: a conformance case directory (its model has no tokenizer: its input ids are used)"""
    text = {"texts": ["a cat", "two dogs on a sofa"]}
    if case:
        text = {"input_ids": np.load(os.path.join(case, "input_ids.npy"))}
        if os.path.exists(os.path.join(case, "attention_mask.npy")):
            text["attention_mask"] = np.load(os.path.join(case, "attention_mask.npy"))

    def run():
        m = mmsuite.load(path)
        m.forward(images=[PNG, IMG], **text)
        expect_error(lambda: m.encode_text(input_ids=np.full((1, 4), 10**9, np.int64)))
        m.unload()
    return run


def vlm(path, ask):
    def run():
        m = mmsuite.load(path)
        ask(m)
        m.unload()
    return run


def lm(path):
    def run():
        m = mmsuite.load(path)
        m.generate_ids([[1, 5, 9, 2], [3, 4]], max_new_tokens=4)
        m.generate_ids([[1, 5, 9, 2]], max_new_tokens=3, num_beams=2)
        expect_error(lambda: m.generate_ids([[10**9]], max_new_tokens=2))
        m.unload()
    return run


def tokenizers():
    paths = sorted(glob.glob(os.path.join(DATA, "tokenizers", "*")))
    paths = [p for p in paths if os.path.isdir(p) or p.endswith((".model", ".gz")) or ".model." in p]

    def run():
        loaded = 0
        for p in paths:
            try:
                tok = load_tokenizer(p)
            except (mmsuite.UnsupportedError, FileNotFoundError):  # fixture dirs that are not whole tokenizers
                continue
            loaded += 1
            ids = tok.encode("Hello wörld, \U0001F600 naïve café \u200b test")
            tok.decode(ids)
            expect_error(lambda: tok.decode([-5]))
        assert loaded >= 10, loaded
    return run


def images():
    from mmsuite.image_processor import decode_image

    def run():
        with open(PNG, "rb") as f:
            data = f.read()
        decode_image(data)
        expect_error(lambda: decode_image(data[: len(data) // 2]))
        expect_error(lambda: decode_image(b"\xff\xd8\xff" + data[3:200]))
    return run


def broken_checkpoints(tmp):
    src = os.path.join(CONF, "clip", "tiny_quickgelu", "model")
    trunc = os.path.join(tmp, "trunc")
    shutil.copytree(src, trunc)
    f = os.path.join(trunc, "model.safetensors")
    os.truncate(f, os.path.getsize(f) - 100)
    badcfg = os.path.join(tmp, "badcfg")
    shutil.copytree(src, badcfg)
    with open(os.path.join(badcfg, "config.json"), "w") as fh:
        fh.write('{"model_type": "clip", "text_config": {"hidden_size": -3}}')

    def run():
        expect_error(lambda: mmsuite.load(trunc))
        expect_error(lambda: mmsuite.load(badcfg))
    return run


T5 = os.path.join(CONF, "blip2_t5", "tiny_flant5")
NEXT = os.path.join(CONF, "llava_next", "tiny_mistral_anyres")


def blip2_t5(m):
    """The Flan-T5 case has no tokenizer: its prompt ids, through the encoder-decoder path."""
    from mmsuite.generation import GenerationConfig
    ids = np.load(os.path.join(T5, "input_ids.npy"))[0]
    feats = m.image_features(np.load(os.path.join(T5, "pixel_values.npy")), intermediates=False)
    _, emb = m.build_inputs(ids, feats[0])
    enc = _C.t5_encode(m._h, emb)
    m._gen.generate([([0], None, enc)], GenerationConfig(max_new_tokens=4, eos_token_id=[]))
    m._gen.generate([([0], None, enc)], GenerationConfig(max_new_tokens=3, num_beams=2, eos_token_id=[]))


def families(tmp):
    f = {}
    for d in sorted(glob.glob(os.path.join(CONF, "clip", "*"))) + sorted(glob.glob(os.path.join(CONF, "siglip", "*"))):
        f[os.path.relpath(d, CONF)] = contrastive(os.path.join(d, "model"), d)
    f["openclip/tiny_vit"] = contrastive(os.path.join(CONF, "openclip", "tiny_vit", "model"),
                                         os.path.join(CONF, "openclip", "tiny_vit"))
    f["tiny-shapes-clip"] = contrastive(os.path.join(WEIGHTS, "tiny-shapes-clip"))
    f["blip2 (OPT)"] = vlm(os.path.join(WEIGHTS, "tiny-shapes-blip2"),
                           lambda m: (m.caption([IMG, PNG]), m.ask(IMG, "what color?"), m.caption([IMG], num_beams=2)))
    f["blip2 (Flan-T5)"] = vlm(os.path.join(T5, "model"), blip2_t5)
    f["llava 1.5"] = vlm(os.path.join(WEIGHTS, "tiny-shapes-llava"),
                         lambda m: (m.ask(IMG, "what shape?"), list(m.ask(PNG, "what color?", stream=True))))
    f["llava-next"] = vlm(os.path.join(NEXT, "model"),
                          lambda m: m.generate(np.load(os.path.join(NEXT, "input_ids.npy"))[0].tolist(),
                                               images=[glob.glob(os.path.join(NEXT, "*.png"))[0]], max_new_tokens=4))
    for d in sorted(glob.glob(os.path.join(DATA, "lm", "*"))):
        if os.path.isdir(d):
            f["lm/" + os.path.basename(d)] = lm(d)
    f["tokenizers"] = tokenizers()
    f["images"] = images()
    f["broken checkpoints"] = broken_checkpoints(tmp)
    return f


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cycles", type=int, default=3)
    ap.add_argument("--inject-leak", action="store_true",
                    help="leak one object made by the extension and exit (tests that the detector sees it)")
    args = ap.parse_args()
    if args.inject_leak:
        import ctypes
        ctypes.pythonapi.Py_IncRef(ctypes.py_object(_C.rng_new(7)))  # a capsule over an mms_calloc block
        return 0
    mmsuite.set_num_threads(2)
    failed = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, run in families(tmp).items():
            counts = []
            for _ in range(args.cycles):
                run()
                gc.collect()
                s = _C.memory_stats()
                counts.append((s["live_blocks"], s["current_bytes"]))
            grew = counts[-1] != counts[0]
            print(f"{'LEAK' if grew else 'ok  '} {name:32s} live C blocks/bytes per cycle: "
                  + ", ".join(f"{b}/{n}" for b, n in counts), flush=True)
            if grew:
                failed.append(name)
    if failed:
        print("leak_check: the C allocator's live blocks grew over cycles of: " + ", ".join(failed))
        return 1
    print(f"leak_check: every family flat over {args.cycles} cycles")
    return 0


if __name__ == "__main__":
    sys.exit(main())
