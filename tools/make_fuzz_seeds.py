"""Seed corpora of the libFuzzer harnesses: tests/fuzz/corpus/<target>/ (issue 7, part 2).

Deterministic (fixed pixel patterns, fixed texts): re-running gives the same files for the same
Pillow / safetensors / tokenizers versions. Every seed starts with the option bytes its harness
reads (see the comment at the top of tests/fuzz/<target>.c). Run with the repository venv:

    .venv/bin/python tools/make_fuzz_seeds.py
"""
import gzip
import io
import json
import os
import shutil
import struct
import sys

import numpy as np
from PIL import Image
from safetensors.numpy import save

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "tests", "data")
OUT = os.path.join(ROOT, "tests", "fuzz", "corpus")


def put(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---- fuzz_safetensors ----------------------------------------------------------------------------

def safetensors_seeds():
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    single = save({"w": a, "b": np.ones(3, np.float16)}, metadata={"format": "pt"})
    mixed = save({"i": np.arange(4, dtype=np.int64), "u": np.zeros((2, 2), np.uint8), "d": np.zeros(2, np.float64),
                  "e": np.zeros((0, 5), np.float32), "k": np.array([True, False])})
    for mode, blob, name in [(0, single, "single"), (2, single, "single_dir"), (4, mixed, "mixed_in_memory"),
                             (0, mixed, "mixed"), (0x0a, single, "single_dir_filename")]:
        put("fuzz_safetensors", name, bytes([mode]) + blob)
    # sharded: index JSON + two shards
    s1 = save({"a.weight": np.ones((2, 2), np.float32)})
    s2 = save({"b.weight": np.zeros(4, np.float32), "c": np.zeros(1, np.int32)})
    index = json.dumps({"metadata": {"total_size": 28},
                        "weight_map": {"a.weight": "s1.safetensors", "b.weight": "s2.safetensors",
                                       "c": "s2.safetensors"}}).encode()
    for mode, name in [(1, "index"), (3, "index_dir"), (5, "index_in_memory"), (0x0b, "index_dir_filename"),
                       (0x1b, "index_dir_shard_filename")]:
        put("fuzz_safetensors", name, bytes([mode]) + struct.pack("<HH", len(index), len(s1)) + index + s1 + s2)
    # the header of a real (bf16, sharded) checkpoint and the first bytes of its data
    real = os.path.join(DATA, "conformance/clip/tiny_gelu_firsteos_bf16_sharded/model/model-00002-of-00002.safetensors")
    with open(real, "rb") as f:
        blob = f.read()
    put("fuzz_safetensors", "real_prefix", b"\0" + blob[:8 + struct.unpack("<Q", blob[:8])[0] + 64])


# ---- fuzz_config ---------------------------------------------------------------------------------

def config_seeds():
    for dirpath, _, files in sorted(os.walk(os.path.join(DATA, "conformance"))):
        for fn in sorted(files):
            if fn in ("config.json", "open_clip_config.json"):
                rel = os.path.relpath(dirpath, os.path.join(DATA, "conformance")).split(os.sep)
                with open(os.path.join(dirpath, fn), "rb") as f:
                    put("fuzz_config", f"{rel[0]}_{rel[1]}_{fn}", f.read())
    # keys the real files leave to their defaults
    extra = {
        "llama_rope": {"model_type": "llama", "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2,
                       "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                        "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
                       "eos_token_id": [1, 2], "head_dim": 16},
        "qwen2_window": {"model_type": "qwen2", "hidden_size": 32, "num_attention_heads": 2, "sliding_window": None,
                         "use_sliding_window": True, "rope_parameters": {"rope_theta": 1e6, "rope_type": "default"}},
        "llava_next_pinpoints": {"model_type": "llava_next", "image_grid_pinpoints": [[336, 672], [672, 336]],
                                 "vision_feature_layer": -2, "vision_feature_select_strategy": "full",
                                 "text_config": {"model_type": "mistral"}, "vision_config": {"num_hidden_layers": 2}},
        "t5": {"model_type": "t5", "d_model": 32, "d_kv": 8, "num_heads": 4, "feed_forward_proj": "gated-gelu",
               "num_decoder_layers": 2},
    }
    for name, cfg in extra.items():
        put("fuzz_config", name + ".json", json.dumps(cfg).encode())


# ---- fuzz_image ----------------------------------------------------------------------------------

def pattern(w, h):
    y, x = np.mgrid[0:h, 0:w]
    r = (x * 255 // max(w - 1, 1)).astype(np.uint8)
    g = (y * 255 // max(h - 1, 1)).astype(np.uint8)
    b = (((x // 3) ^ (y // 3)) * 40 % 256).astype(np.uint8)
    return np.stack([r, g, b], -1)


def image_seeds():
    rgb = Image.fromarray(pattern(13, 9))
    pngs = {
        "rgb8": (rgb, {}), "rgb8_adam7": (rgb, {"interlace": 1}), "rgba": (rgb.convert("RGBA"), {}),
        "gray8": (rgb.convert("L"), {}), "gray_alpha": (rgb.convert("LA"), {}), "bilevel": (rgb.convert("1"), {}),
        "palette": (rgb.convert("P", palette=Image.ADAPTIVE, colors=16), {"transparency": 3}),
        "palette_adam7": (rgb.convert("P", palette=Image.ADAPTIVE, colors=4), {"interlace": 1, "bits": 2}),
        "gray16": (Image.fromarray((pattern(7, 5)[..., 0].astype(np.uint16) * 3)), {}),
    }
    for name, (im, kw) in pngs.items():
        b = io.BytesIO()
        im.save(b, "PNG", **kw)
        put("fuzz_image", name + ".png", bytes([0x00]) + b.getvalue())
    # 16-bit RGB PNG, written by hand (Pillow cannot write it): IHDR depth 16, colour type 2
    import zlib
    w, h = 4, 3
    raw = b"".join(b"\0" + bytes((x * 40 + y) % 256 for x in range(w * 6)) for y in range(h))

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    png16 = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)) +
             chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    put("fuzz_image", "rgb16.png", bytes([0x10]) + png16)
    big = Image.fromarray(pattern(40, 24))
    jpegs = {
        "baseline420": (big, {"quality": 80}, 0x02),
        "progressive": (big, {"quality": 70, "progressive": True}, 0x46),
        "gray": (big.convert("L"), {"quality": 60}, 0x80),
        "cmyk": (big.convert("CMYK"), {"quality": 60}, 0x06),
        "q444_draft": (Image.fromarray(pattern(72, 40)), {"quality": 50, "subsampling": 0}, 0xc1),
    }
    for name, (im, kw, opt) in jpegs.items():
        b = io.BytesIO()
        im.save(b, "JPEG", **kw)
        assert len(b.getvalue()) < 4096, name
        put("fuzz_image", name + ".jpg", bytes([opt]) + b.getvalue())
    for rel in ("conformance/openclip/tiny_vit/img2_30x30.png",
                "conformance/clip/tiny_gelu_firsteos_bf16_sharded/img2_29x35.png"):
        with open(os.path.join(DATA, rel), "rb") as f:
            put("fuzz_image", "real_" + os.path.basename(rel), bytes([0x24]) + f.read())


# ---- fuzz_tokenizers -----------------------------------------------------------------------------

# index of each tokenizer in fuzz_tokenizers.c's table, and the fixture whose texts seed it
TOKENIZERS = [("clip", "clip.jsonl"), ("gpt2", "gpt2.jsonl"), ("hf_llama", "hf_llama.jsonl"),
              ("hf_llama3", "hf_llama3.jsonl"), ("hf_qwen2", "hf_qwen2.jsonl"), ("hf_misc_bytes", "hf_misc_bytes.jsonl"),
              ("hf_misc_meta", "hf_misc_meta.jsonl"), ("sp_bpe_small", "sp_bpe_small.jsonl"),
              ("sp_unigram_nfkc", "sp_unigram_nfkc.jsonl"), ("sp_unigram_bytefb", "sp_unigram_bytefb.jsonl"),
              ("sp_unigram_suffix", "sp_unigram_suffix.jsonl"), ("sp_unigram_noescape", "sp_unigram_noescape.jsonl"),
              ("mistral_v3", "mistral_v3.jsonl"), ("t5", "t5.jsonl")]


def records(fn):
    with open(os.path.join(DATA, "tokenizers", fn), encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def pick_texts(fn, n):
    """n texts of the fixture: quantiles of its lengths (short to long), one non-ASCII among them."""
    texts = [r["text"] for r in records(fn) if isinstance(r.get("text"), str) and 0 < len(r["text"].encode()) < 400]
    texts = sorted(set(texts), key=lambda t: (len(t.encode()), t))
    if len(texts) <= n:
        return texts
    picked = [texts[min(len(texts) - 1, int(q * len(texts)))] for q in (0.1, 0.4, 0.7, 0.9, 0.99)]
    wide = [t for t in texts if not t.isascii() and t not in picked]
    return picked + wide[len(wide) // 2:len(wide) // 2 + 1]


def tokenizer_seeds():
    for k, (name, fn) in enumerate(TOKENIZERS):
        texts = pick_texts(fn, 6)
        for i, t in enumerate(texts):
            put("fuzz_tokenizers", f"{name}_enc{i}", bytes([k, 0x04 if i % 2 else 0x00]) + t.encode())
        ids = [r["ids"] for r in records(fn) if isinstance(r.get("ids"), list) and 0 < len(r["ids"]) < 40][:2]
        for i, row in enumerate(ids):
            put("fuzz_tokenizers", f"{name}_dec32_{i}", bytes([k, 0x01]) + struct.pack(f"<{len(row)}i", *row))
            put("fuzz_tokenizers", f"{name}_dec64_{i}", bytes([k, 0x06]) + struct.pack(f"<{len(row)}q", *row))
        batch = b"\xff".join(t.encode() for t in texts[:3])
        put("fuzz_tokenizers", f"{name}_batch", bytes([k, 0x0f, 16]) + batch)


# ---- fuzz_tokenizer_json -------------------------------------------------------------------------

CORPUS_TEXT = ["a photo of a cat", "a photo of a dog", "hello world", "the quick brown fox jumps over the lazy dog",
               "caf\u00e9 na\u00efve \u4e2d\u6587 \U0001F600", "don't stop 12345 !!"] * 5


def tokenizer_json_seeds():
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    # GPT-2 style: byte level
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(CORPUS_TEXT, trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"],
                                                             initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    gpt2_json = json.dumps(json.loads(tok.to_str()), ensure_ascii=False, separators=(",", ":")).encode()
    # Llama style: Metaspace-free normalizer (Prepend + Replace), byte fallback, template
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("\u2581"), normalizers.Replace(" ", "\u2581")])
    tok.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(" ", 1, 0)])
    specials = ["<unk>", "<s>", "</s>"] + [f"<0x{i:02X}>" for i in range(256)]
    tok.train_from_iterator(CORPUS_TEXT, trainers.BpeTrainer(vocab_size=320, special_tokens=specials))
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    llama = json.loads(tok.to_str())
    llama["added_tokens"] = llama["added_tokens"][:3]  # the byte tokens stay in the vocabulary only
    llama_json = json.dumps(llama, ensure_ascii=False, separators=(",", ":")).encode()
    for opts, name, blob in [(0, "gpt2", gpt2_json), (4, "gpt2_opts", gpt2_json), (0, "llama", llama_json),
                             (4, "llama_opts", llama_json)]:
        put("fuzz_tokenizer_json", name + ".json", bytes([opts]) + blob)
    # the GPT-2 two-file layout of the byte-level one
    model = json.loads(gpt2_json)["model"]
    vocab = json.dumps(model["vocab"]).encode()
    merges = ("#version: 0.2\n" + "\n".join(m if isinstance(m, str) else " ".join(m) for m in model["merges"]) + "\n").encode()
    put("fuzz_tokenizer_json", "gpt2_files", bytes([1]) + struct.pack("<H", len(vocab)) + vocab + merges)
    # CLIP: the first 200 OpenAI merges, as merges text and as an HF vocab.json + merges.txt pair
    with gzip.open(os.path.join(DATA, "tokenizers", "bpe_simple_vocab_16e6.txt.gz"), "rt", encoding="utf-8") as f:
        lines = f.read().split("\n")[:201]
    put("fuzz_tokenizer_json", "clip_openai", bytes([3]) + "\n".join(lines).encode())
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\u00a1"), ord("\u00ac") + 1)) + \
        list(range(ord("\u00ae"), ord("\u00ff") + 1))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    symbols = [chr(c) for c in cs]
    vocab = symbols + [s + "</w>" for s in symbols]
    merges = [tuple(line.split()) for line in lines[1:] if line]
    vocab += ["".join(m) for m in merges] + ["<|startoftext|>", "<|endoftext|>"]
    vocab_json = json.dumps({t: i for i, t in enumerate(vocab)}, ensure_ascii=False).encode()
    merges_txt = ("#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n").encode()
    put("fuzz_tokenizer_json", "clip_hf_files", bytes([2]) + struct.pack("<H", len(vocab_json)) + vocab_json + merges_txt)


# ---- fuzz_sp_model -------------------------------------------------------------------------------

def sp_model_seeds():
    for fn in ("sp_bpe_small.model", "sp_unigram_suffix.model", "sp_unigram_bytefb.model"):
        shutil.copy(os.path.join(DATA, "tokenizers", fn), os.path.join(OUT, "fuzz_sp_model", fn))


def main():
    only = set(sys.argv[1:])
    gens = {"fuzz_safetensors": safetensors_seeds, "fuzz_config": config_seeds, "fuzz_image": image_seeds,
            "fuzz_tokenizers": tokenizer_seeds, "fuzz_tokenizer_json": tokenizer_json_seeds,
            "fuzz_sp_model": sp_model_seeds}
    for target, gen in gens.items():
        if only and target not in only:
            continue
        shutil.rmtree(os.path.join(OUT, target), ignore_errors=True)
        os.makedirs(os.path.join(OUT, target))
        gen()
        files = os.listdir(os.path.join(OUT, target))
        size = sum(os.path.getsize(os.path.join(OUT, target, f)) for f in files)
        print(f"{target}: {len(files)} seeds, {size} bytes")


if __name__ == "__main__":
    main()
