"""Random-weight BLIP-2 OPT-2.7B-shaped checkpoint for benchmarks (bench_blip2.py).

    python tools/make_blip2_bench.py [--out DIR] [--force] [--no-verify] [--threads N]

Writes, by default to ~/.cache/mmsuite-bench/blip2-opt2.7b-shape/, a checkpoint with exactly the
shapes and config of Salesforce/blip2-opt-2.7b (ViT-g/14 224 vision tower, 39 layers; 12-layer
Q-Former with 32 queries; OPT-2.7B with its vocabulary resized to 50304 rows; "<image>" = 50265)
and random bfloat16 weights, saved sharded with save_pretrained (safetensors, 2 GB shards), plus:

* the OPT tokenizer (vocab.json from /work/shared/tokenizers/assets/opt padded to OPT's 50265
  entries with RoBERTa's placeholder entries, GPT-2 merges as merges.txt, tokenizer.json) with
  "<image>" added as special token 50265, the way Blip2Processor checkpoints carry it
  (tokenizer_config.json added_tokens_decoder, added_tokens.json, special_tokens_map.json);
* processor_config.json (Blip2Processor, num_query_tokens 32) and preprocessor_config.json
  (BlipImageProcessor: 224x224, bicubic, OpenAI CLIP mean/std).

Weights are drawn per tensor straight into bf16 (meta-device model, then filled): N(0, 0.02) for
matrices, embeddings and query tokens; LayerNorm weights 1 + N(0, 0.02) and all biases N(0, 0.02)
(small but non-zero, so an engine that drops a bias or swaps LayerNorm weight/bias shows up in a
comparison with transformers). Each tensor has its own seed (from its name), so the file contents
do not depend on the order of parameters. Peak RSS is about the bf16 model (7.7 GB) plus one shard.

Idempotent: a directory whose .complete marker matches this script's settings is left alone.
At the end the checkpoint is loaded with transformers' Blip2ForConditionalGeneration (bf16) and
one short caption is generated (skip with --no-verify).
"""
import argparse
import hashlib
import json
import os
import shutil
import sys
import time

DEFAULT_OUT = os.path.expanduser("~/.cache/mmsuite-bench/blip2-opt2.7b-shape")
TOK_ASSETS = os.environ.get("MMSUITE_TOKENIZER_ASSETS", "/work/shared/tokenizers/assets")
FORMAT = 1  # bump when the contents change, so old directories get rewritten

IMAGE_TOKEN_INDEX = 50265
OPENAI_CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
OPENAI_CLIP_STD = [0.26862954, 0.26130258, 0.27577711]

VISION = dict(hidden_size=1408, intermediate_size=6144, num_hidden_layers=39, num_attention_heads=16,
              image_size=224, patch_size=14, layer_norm_eps=1e-6, hidden_act="gelu", qkv_bias=True,
              attention_dropout=0.0, initializer_range=1e-10)
QFORMER = dict(vocab_size=30522, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
               intermediate_size=3072, hidden_act="gelu", hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1,
               max_position_embeddings=512, initializer_range=0.02, layer_norm_eps=1e-12, pad_token_id=0,
               cross_attention_frequency=2, encoder_hidden_size=1408)
OPT_TEXT = dict(model_type="opt", vocab_size=50304, hidden_size=2560, num_hidden_layers=32, num_attention_heads=32,
                ffn_dim=10240, max_position_embeddings=2048, word_embed_proj_dim=2560, do_layer_norm_before=True,
                activation_function="relu", dropout=0.1, attention_dropout=0.0, layerdrop=0.0, init_std=0.02,
                enable_bias=True, layer_norm_elementwise_affine=True, eos_token_id=2, bos_token_id=2, pad_token_id=1,
                prefix="</s>", tie_word_embeddings=True, use_cache=True)

# OPT's vocab.json has 50265 entries; the shared asset stops at 50260 (<|endoftext|>), the
# entries no text produces are left out. RoBERTa/BART fill 50261..50264 like this.
VOCAB_PAD = ["madeupword0000", "madeupword0001", "madeupword0002", "<mask>"]


def settings_digest():
    blob = json.dumps([FORMAT, VISION, QFORMER, OPT_TEXT, IMAGE_TOKEN_INDEX, VOCAB_PAD], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def is_complete(out):
    try:
        with open(os.path.join(out, ".complete")) as f:
            marker = json.load(f)
    except (OSError, ValueError):
        return False
    if marker.get("settings") != settings_digest():
        return False
    return all(os.path.isfile(os.path.join(out, n)) for n in marker.get("files", []))


def make_config():
    from transformers import Blip2Config, Blip2QFormerConfig, Blip2VisionConfig, OPTConfig
    text = dict(OPT_TEXT)
    text.pop("model_type")
    cfg = Blip2Config(vision_config=Blip2VisionConfig(**VISION).to_dict(),
                      qformer_config=Blip2QFormerConfig(**QFORMER).to_dict(),
                      text_config=OPTConfig(**text).to_dict(),
                      num_query_tokens=32, image_token_index=IMAGE_TOKEN_INDEX, initializer_factor=1.0,
                      initializer_range=0.02, architectures=["Blip2ForConditionalGeneration"])
    assert cfg.use_decoder_only_language_model
    cfg.dtype = "bfloat16"
    return cfg


def _seed(name):
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little") & ((1 << 63) - 1)


def _is_norm(name):
    low = name.lower()
    return "layernorm" in low or "layer_norm" in low or "final_layer_norm" in low or ".ln_" in low


def fill_random(model, std=0.02):
    """Every parameter and buffer of a (meta -> to_empty) model drawn in place, bf16."""
    import torch
    n = 0
    seen = set()
    for name, p in list(model.named_parameters(remove_duplicate=True)) + list(model.named_buffers()):
        if p.data_ptr() in seen:
            continue
        seen.add(p.data_ptr())
        g = torch.Generator().manual_seed(_seed(name))
        with torch.no_grad():
            if not p.is_floating_point():
                raise RuntimeError(f"unexpected integer tensor {name} {tuple(p.shape)}")
            if _is_norm(name) and name.endswith(".weight"):
                p.normal_(0.0, std, generator=g).add_(1.0)
            else:
                p.normal_(0.0, std, generator=g)
        n += p.numel()
    return n


def build_model(cfg):
    import torch
    from transformers import Blip2ForConditionalGeneration
    with torch.device("meta"):
        model = Blip2ForConditionalGeneration(cfg)
    model = model.to(torch.bfloat16)  # meta: no memory; also the fp32-kept qformer goes to bf16
    model = model.to_empty(device="cpu")
    model.tie_weights()  # to_empty gives every parameter its own storage; re-tie lm_head to embed_tokens
    emb = model.language_model.get_input_embeddings().weight
    head = model.language_model.get_output_embeddings().weight
    assert emb.data_ptr() == head.data_ptr(), "lm_head not tied to embed_tokens"
    n = fill_random(model)
    model.eval()
    return model, n


def write_tokenizer(out):
    """vocab.json + merges.txt + tokenizer.json + configs, '<image>' = 50265 (Blip2Processor style)."""
    from transformers import AutoTokenizer, Blip2Processor, BlipImageProcessor
    with open(os.path.join(TOK_ASSETS, "opt", "vocab.json"), encoding="utf-8") as f:
        vocab = json.load(f)
    assert len(vocab) == 50261 and vocab["<|endoftext|>"] == 50260, "unexpected OPT vocab asset"
    for i, tok in enumerate(VOCAB_PAD):
        vocab[tok] = 50261 + i
    with open(os.path.join(out, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False)
    shutil.copyfile(os.path.join(TOK_ASSETS, "gpt2", "vocab.bpe"), os.path.join(out, "merges.txt"))
    # facebook/opt-2.7b's tokenizer settings (unk is </s> there as well)
    base_cfg = {"tokenizer_class": "GPT2Tokenizer", "add_bos_token": True, "add_prefix_space": False,
                "errors": "replace", "bos_token": "</s>", "eos_token": "</s>", "unk_token": "</s>",
                "pad_token": "<pad>", "model_max_length": 1000000000000000019884624838656}
    with open(os.path.join(out, "tokenizer_config.json"), "w") as f:
        json.dump(base_cfg, f, indent=2)
    tok = AutoTokenizer.from_pretrained(out)
    assert len(tok) == 50265, len(tok)
    ip = BlipImageProcessor(do_resize=True, size={"height": 224, "width": 224}, resample=3, do_rescale=True,
                            rescale_factor=1 / 255, do_normalize=True, image_mean=OPENAI_CLIP_MEAN,
                            image_std=OPENAI_CLIP_STD, do_convert_rgb=True)
    proc = Blip2Processor(ip, tok, num_query_tokens=32)  # adds "<image>" as a special token -> 50265
    assert tok.convert_tokens_to_ids("<image>") == IMAGE_TOKEN_INDEX
    tok.save_pretrained(out)  # tokenizer.json (with the added token and BOS post-processor)

    # tokenizer_config.json as Blip2Processor checkpoints made with transformers 4.4x carry it
    # (added_tokens_decoder, add_bos_token, processor_class); transformers 5 reads it the same.
    def added(content):
        return {"content": content, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False,
                "special": True}
    tok_cfg = dict(base_cfg, processor_class="Blip2Processor", clean_up_tokenization_spaces=False,
                   added_tokens_decoder={"1": added("<pad>"), "2": added("</s>"),
                                         str(IMAGE_TOKEN_INDEX): added("<image>")})
    with open(os.path.join(out, "tokenizer_config.json"), "w") as f:
        json.dump(tok_cfg, f, indent=2)
    with open(os.path.join(out, "special_tokens_map.json"), "w") as f:
        json.dump({"bos_token": "</s>", "eos_token": "</s>", "unk_token": "</s>", "pad_token": "<pad>"}, f, indent=2)
    with open(os.path.join(out, "added_tokens.json"), "w") as f:
        json.dump({"<image>": IMAGE_TOKEN_INDEX}, f, indent=2)
    with open(os.path.join(out, "processor_config.json"), "w") as f:
        json.dump({"num_query_tokens": proc.num_query_tokens, "image_token": "<image>",
                   "processor_class": "Blip2Processor"}, f, indent=2)
    with open(os.path.join(out, "preprocessor_config.json"), "w") as f:
        json.dump({"do_convert_rgb": True, "do_normalize": True, "do_rescale": True, "do_resize": True,
                   "image_mean": OPENAI_CLIP_MEAN, "image_processor_type": "BlipImageProcessor",
                   "image_std": OPENAI_CLIP_STD, "processor_class": "Blip2Processor", "resample": 3,
                   "rescale_factor": 0.00392156862745098, "size": {"height": 224, "width": 224}}, f, indent=2)


def check_tokenizer(out):
    from transformers import AutoTokenizer, Blip2Processor
    tok = AutoTokenizer.from_pretrained(out)
    ids = tok("Hello world! cécé herlolip")["input_ids"]
    assert ids == [2, 31414, 232, 328, 740, 1140, 12695, 69, 46078, 1588], ids
    assert tok.convert_tokens_to_ids("<image>") == IMAGE_TOKEN_INDEX
    proc = Blip2Processor.from_pretrained(out)
    import numpy as np
    enc = proc(images=np.zeros((224, 224, 3), np.uint8), text="a photo of", return_tensors="np")
    assert list(enc["input_ids"][0][:33]) == [IMAGE_TOKEN_INDEX] * 32 + [2], enc["input_ids"]
    assert tuple(enc["pixel_values"].shape) == (1, 3, 224, 224), enc["pixel_values"].shape


def verify(out):
    import numpy as np
    import torch
    from transformers import Blip2ForConditionalGeneration, Blip2Processor
    t = time.perf_counter()
    model = Blip2ForConditionalGeneration.from_pretrained(out, dtype=torch.bfloat16).eval()
    t_load = time.perf_counter() - t
    proc = Blip2Processor.from_pretrained(out)
    img = (np.arange(224 * 224 * 3, dtype=np.uint32).reshape(224, 224, 3) * 7 % 256).astype(np.uint8)
    enc = proc(images=img, text="", return_tensors="pt")
    with torch.inference_mode():
        t = time.perf_counter()
        ids = model.generate(pixel_values=enc["pixel_values"].to(torch.bfloat16), input_ids=enc["input_ids"],
                             max_new_tokens=3, min_new_tokens=3, do_sample=False)
        t_gen = time.perf_counter() - t
    new = ids[0, enc["input_ids"].shape[1]:].tolist()
    assert len(new) == 3, ids.shape
    print(f"verify: loaded in {t_load:.1f}s, generate(3 tokens) {t_gen:.1f}s, new ids {new}, "
          f"text {proc.batch_decode(ids[:, enc['input_ids'].shape[1]:], skip_special_tokens=True)[0]!r}",
          file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--force", action="store_true", help="rewrite even if complete")
    ap.add_argument("--no-verify", action="store_true", help="skip the transformers load + generate check")
    ap.add_argument("--threads", type=int, default=2, help="torch threads while drawing weights")
    a = ap.parse_args()
    out = os.path.abspath(os.path.expanduser(a.out))
    if not a.force and is_complete(out):
        print(f"{out}: complete, nothing to do", file=sys.stderr)
        return out
    import torch
    torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    if os.path.isdir(out):
        shutil.rmtree(out)
    tmp = out + ".partial"
    if os.path.isdir(tmp):
        shutil.rmtree(tmp)
    os.makedirs(tmp)
    cfg = make_config()
    model, n = build_model(cfg)
    t_init = time.perf_counter() - t0
    print(f"random init: {n / 1e9:.3f} B parameters in {t_init:.1f}s", file=sys.stderr)
    model.save_pretrained(tmp, safe_serialization=True, max_shard_size="2GB")
    del model
    write_tokenizer(tmp)
    check_tokenizer(tmp)
    files = sorted(f for f in os.listdir(tmp) if not f.startswith("."))
    size = sum(os.path.getsize(os.path.join(tmp, f)) for f in files)
    os.rename(tmp, out)
    if not a.no_verify:
        verify(out)
    with open(os.path.join(out, ".complete"), "w") as f:
        json.dump({"settings": settings_digest(), "files": files, "parameters": n, "bytes": size,
                   "seconds": round(time.perf_counter() - t0, 1)}, f, indent=1)
    print(f"wrote {out}: {len(files)} files, {size / 1e9:.2f} GB, {n / 1e9:.3f} B parameters, "
          f"{time.perf_counter() - t0:.0f}s", file=sys.stderr)
    return out


if __name__ == "__main__":
    main()
