"""Train the small models mmsuite ships as its embedded default, honestly, on the synthetic
shapes world (mmsuite/synth.py, "train" split), with PyTorch + transformers (dev-only tools):

  tiny-shapes-clip    CLIPModel       (ViT 64px/patch 8 + text transformer, contrastive)
  tiny-shapes-blip2   Blip2ForConditionalGeneration (ViT + Q-Former + OPT; captions and
                      "Question: ... Answer:" answers)
  tiny-shapes-llava   LlavaForConditionalGeneration (vision tower initialized from the trained
                      CLIP and fine-tuned, MLP projector, Llama; LLaVA-1.5 chat format)

Each is saved as an ordinary HF directory (config.json + model.safetensors + tokenizer files
+ preprocessor_config.json) that mmsuite loads like any checkpoint; the tokenizers are trained
here on the world's text (a CLIP BPE vocab.json/merges.txt; byte-level BPE tokenizer.json files
laid out like OPT's and Llama's). Deterministic (seeded, single process).

    .venv/bin/python tools/train_tiny_models.py [--only clip,blip2,llava] [--out mmsuite/weights]
    .venv/bin/python tools/train_tiny_models.py --references-only   # transformers outputs for tests
    .venv/bin/python tools/write_model_cards.py   # held-out metrics through mmsuite -> README.md

The shipped weights: --only clip --threads 1 and --only blip2 --threads 1 run side by side
(~25 min each on one core), then --only llava --threads 2 (~11 min); the defaults are those
step counts (training.json in each directory records steps, batch, threads and the final loss).
"""
import argparse
import collections
import json
import math
import os
import re
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
from mmsuite import synth  # noqa: E402

QUESTION = "Question: {} Answer:"  # BLIP-2's VQA prompt (mmsuite.blip2)
CLIP_CTX = 24


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, flush=True)


# ---- data ----------------------------------------------------------------------------------------

GROUP = 4  # consecutive train samples share colour, count and texture (hard negatives for CLIP)


def make_data(n):
    """n train samples: images (n, 64, 64, 3) uint8 and the Sample records (without images).
    Each block of GROUP samples shares the colour, count and texture of its first one and draws
    its own shape and position, so a contrastive batch of whole blocks cannot tell its images
    apart without shape and position."""
    imgs = np.empty((n, synth.SIZE, synth.SIZE, 3), np.uint8)
    recs = []
    for i in range(n):
        if i % GROUP == 0:
            head = synth.sample("train", i)
        s = synth.sample("train", i, colour=head.colour, count=head.count, texture=head.texture)
        imgs[i] = s.image
        s.image = None
        recs.append(s)
    return imgs, recs


def pixel_values(imgs, processor):
    """mmsuite's own preprocessing (exactly what inference will feed the model)."""
    out = [processor(list(imgs[i:i + 512])) for i in range(0, len(imgs), 512)]
    return torch.from_numpy(np.concatenate(out))


def world_text():
    words = set()
    for s in list(synth.SHAPES) + list(synth._PLURAL.values()) + list(synth.COLOURS) + list(synth.COUNTS) + \
            list(synth.POSITIONS) + list(synth.POSITIONS.values()) + list(synth.TEXTURES):
        words.update(s.split())
    extra = ("a an the of on at in is are there shape shapes shown what where how many colour pattern do does "
             "have photo image picture yes no question answer describe one short sentence user assistant "
             "this thing things object objects left right top bottom middle red green blue").split()
    return sorted(words | set(extra))


# ---- tokenizers ----------------------------------------------------------------------------------

def _bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for c in cs]


def write_clip_tokenizer(out, corpus):
    """A CLIP BPE (vocab.json + merges.txt, OpenAI layout: 256 byte symbols, the same with
    '</w>', the merges, <|startoftext|>, <|endoftext|>) with merges learned on the corpus."""
    words = collections.Counter()
    for line in corpus:
        for w in re.findall(r"[a-z]+|[0-9]|[^\sa-z0-9]+", line.lower()):
            words[tuple(w[:-1]) + (w[-1] + "</w>",)] += 1
    merges = []
    while True:
        pairs = collections.Counter()
        for w, c in words.items():
            for a, b in zip(w, w[1:]):
                pairs[(a, b)] += c
        if not pairs:
            break
        best = max(pairs.items(), key=lambda kv: (kv[1], kv[0]))[0]
        merges.append(best)
        new = collections.Counter()
        for w, c in words.items():
            out_w, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and (w[i], w[i + 1]) == best:
                    out_w.append(w[i] + w[i + 1])
                    i += 2
                else:
                    out_w.append(w[i])
                    i += 1
            new[tuple(out_w)] += c
        words = new
    symbols = _bytes_to_unicode()
    vocab = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges] + ["<|startoftext|>", "<|endoftext|>"]
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "vocab.json"), "w") as f:
        json.dump({t: i for i, t in enumerate(vocab)}, f, ensure_ascii=False)
    with open(os.path.join(out, "merges.txt"), "w") as f:
        f.write("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    cfg = {"tokenizer_class": "CLIPTokenizer", "bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>",
           "pad_token": "<|endoftext|>", "unk_token": "<|endoftext|>", "model_max_length": CLIP_CTX,
           "do_lower_case": True}
    with open(os.path.join(out, "tokenizer_config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
    with open(os.path.join(out, "special_tokens_map.json"), "w") as f:
        json.dump({k: cfg[k] for k in ("bos_token", "eos_token", "pad_token", "unk_token")}, f, indent=1)
    return len(vocab)


def write_lm_tokenizer(out, corpus, layout, vocab_size, chat_template=None):
    """Byte-level BPE tokenizer.json. layout "opt": <s> 0, <pad> 1, </s> 2, <unk> 3, BOS = "</s>"
    (as OPT); "llama": <unk> 0, <s> 1, </s> 2, <pad> 3, BOS = "<s>". "<image>" is the last id."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    specials = ["<s>", "<pad>", "</s>", "<unk>"] if layout == "opt" else ["<unk>", "<s>", "</s>", "<pad>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size - 1, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus, trainer)
    tok.add_special_tokens(["<image>"])
    bos = "</s>" if layout == "opt" else "<s>"
    tok.post_processor = processors.TemplateProcessing(single=f"{bos} $A", pair=f"{bos} $A {bos} $B",
                                                       special_tokens=[(bos, tok.token_to_id(bos))])
    os.makedirs(out, exist_ok=True)
    tok.save(os.path.join(out, "tokenizer.json"))
    cfg = {"tokenizer_class": "GPT2Tokenizer" if layout == "opt" else "PreTrainedTokenizerFast", "bos_token": bos,
           "eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>", "add_bos_token": True,
           "model_max_length": 128}
    if chat_template:
        cfg["chat_template"] = chat_template
    with open(os.path.join(out, "tokenizer_config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
    return tok


def lm_corpus(recs):
    lines = []
    for s in recs[:3000]:
        lines.append(s.caption)
        for q, a, _ in s.qa:
            lines.append(QUESTION.format(q) + " " + a)
            lines.append(f"USER: <image>\n{q} ASSISTANT: {a}")
    lines.append("USER: <image>\nDescribe the image in one short sentence. ASSISTANT: " + recs[0].caption)
    return lines + world_text()


# ---- training loop -------------------------------------------------------------------------------

def train(model, params, batches, steps, lr, name, warmup=100):
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    model.train()
    t0, avg = time.time(), None
    for step in range(steps):
        loss = model_loss(model, batches(step))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        avg = loss.item() if avg is None else 0.98 * avg + 0.02 * loss.item()
        if step % 200 == 0 or step == steps - 1:
            log(f"{name} step {step}/{steps} loss {avg:.4f} ({(time.time() - t0) / (step + 1):.3f} s/step)")
    model.eval()
    return avg


def collate(examples, pad_id, px):
    """[(ids, labels)] -> right-padded input_ids / attention_mask / labels (-100 = no loss)."""
    L = max(len(e[0]) for e in examples)
    ids = torch.full((len(examples), L), pad_id, dtype=torch.long)
    lab = torch.full((len(examples), L), -100, dtype=torch.long)
    mask = torch.zeros((len(examples), L), dtype=torch.long)
    for r, (a, b) in enumerate(examples):
        ids[r, :len(a)], lab[r, :len(b)], mask[r, :len(a)] = torch.tensor(a), torch.tensor(b), 1
    return {"input_ids": ids, "attention_mask": mask, "labels": lab, "pixel_values": px}


def model_loss(model, batch):
    return model(**batch).loss


def save(model, out, extra_files):
    model.save_pretrained(out, safe_serialization=True)
    for name, content in extra_files.items():
        with open(os.path.join(out, name), "w") as f:
            json.dump(content, f, indent=1)


def preprocessor(mean, std):
    return {"image_processor_type": "CLIPImageProcessor", "size": {"shortest_edge": synth.SIZE},
            "crop_size": {"height": synth.SIZE, "width": synth.SIZE}, "do_resize": True, "do_center_crop": True,
            "do_normalize": True, "do_rescale": True, "rescale_factor": 1 / 255, "resample": 3,
            "do_convert_rgb": True, "image_mean": mean, "image_std": std}


LR = {"clip": 1e-3, "blip2": 1e-3, "llava": 1e-3}
# Normalization = the world's pixel statistics (train split): with CLIP's ImageNet-like values
# the bright backgrounds sit ~1.5 sigma off zero and a ViT trained from scratch barely moves.
WORLD_MEAN, WORLD_STD = [0.8566, 0.8507, 0.8461], [0.1048, 0.1121, 0.1305]
POS_INIT_SCALE = 25.0  # position embeddings start at std 0.5 (HF: 0.02) so attention can use them early
VISION = dict(hidden_size=128, intermediate_size=384, num_hidden_layers=4, num_attention_heads=4,
              image_size=synth.SIZE, patch_size=8)


# ---- the three models ----------------------------------------------------------------------------

def train_clip(out, imgs, recs, steps, batch):
    from transformers import CLIPConfig, CLIPModel
    import mmsuite
    vocab_size = write_clip_tokenizer(out, [s.caption for s in recs[:5000]] + world_text() +
                                      ["a photo of", "an image of", "a picture of"])
    with open(os.path.join(out, "preprocessor_config.json"), "w") as f:
        json.dump(preprocessor(WORLD_MEAN, WORLD_STD), f, indent=1)
    tok = mmsuite.load_tokenizer(out)
    eos = vocab_size - 1
    cfg = CLIPConfig(text_config=dict(vocab_size=vocab_size, hidden_size=128, intermediate_size=384,
                                      num_hidden_layers=3, num_attention_heads=4, max_position_embeddings=CLIP_CTX,
                                      bos_token_id=vocab_size - 2, eos_token_id=eos, pad_token_id=eos),
                     vision_config=VISION, projection_dim=128)
    torch.manual_seed(0)
    model = CLIPModel(cfg)
    with torch.no_grad():
        model.vision_model.embeddings.position_embedding.weight.mul_(POS_INIT_SCALE)
    from mmsuite.image_processor import ImageProcessor
    px = pixel_values(imgs, ImageProcessor.from_pretrained(out))
    rng = np.random.default_rng(0)

    def batches(step):
        groups = rng.choice(len(recs) // GROUP, batch // GROUP, replace=False)
        idx = (groups[:, None] * GROUP + np.arange(GROUP)).reshape(-1)
        texts = [synth.caption_variants(recs[i], rng) for i in idx]
        enc = tok(texts, context_length=CLIP_CTX)
        ids, mask = np.asarray(enc["input_ids"], np.int64), np.asarray(enc["attention_mask"], np.int64)
        return {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask),
                "pixel_values": px[idx], "return_loss": True}
    loss = train(model, list(model.parameters()), batches, steps, LR["clip"], "clip")
    save(model, out, {})
    return {"final_loss": loss, "steps": steps, "batch": batch}


def train_blip2(out, imgs, recs, steps, batch):
    from transformers import Blip2Config, Blip2ForConditionalGeneration, OPTConfig
    from mmsuite.image_processor import ImageProcessor
    tok = write_lm_tokenizer(out, lm_corpus(recs), "opt", 640)
    V, img_id, Q = tok.get_vocab_size(), tok.token_to_id("<image>"), 8
    with open(os.path.join(out, "preprocessor_config.json"), "w") as f:
        json.dump(dict(preprocessor(WORLD_MEAN, WORLD_STD), image_processor_type="BlipImageProcessor",
                       size={"height": synth.SIZE, "width": synth.SIZE}, do_center_crop=False), f, indent=1)
    text = OPTConfig(vocab_size=V, hidden_size=128, ffn_dim=512, num_hidden_layers=3, num_attention_heads=4,
                     max_position_embeddings=128, word_embed_proj_dim=128, bos_token_id=2, eos_token_id=2,
                     pad_token_id=1)
    cfg = Blip2Config(vision_config=dict(VISION, qkv_bias=True), num_query_tokens=Q, image_token_index=img_id,
                      qformer_config=dict(hidden_size=128, intermediate_size=384, num_hidden_layers=2,
                                          num_attention_heads=4, encoder_hidden_size=128, vocab_size=V,
                                          cross_attention_frequency=1),
                      text_config=text.to_dict())
    torch.manual_seed(1)
    model = Blip2ForConditionalGeneration(cfg)
    with torch.no_grad():
        model.vision_model.embeddings.position_embedding.mul_(POS_INIT_SCALE)
    px = pixel_values(imgs, ImageProcessor.from_pretrained(out))
    rng = np.random.default_rng(1)
    bos = 2

    def example(s):
        if rng.random() < 0.4:
            prompt, target = [bos], tok.encode(s.caption, add_special_tokens=False).ids
        else:
            q, a, _ = s.qa[int(rng.integers(0, len(s.qa)))]
            prompt = tok.encode(QUESTION.format(q)).ids
            target = tok.encode(" " + a, add_special_tokens=False).ids
        ids = [img_id] * Q + prompt + target + [2]
        labels = [-100] * (Q + len(prompt)) + target + [2]
        return ids, labels

    def batches(step):
        idx = rng.choice(len(recs), batch, replace=False)
        return collate([example(recs[i]) for i in idx], 1, px[idx])
    loss = train(model, list(model.parameters()), batches, steps, LR["blip2"], "blip2")
    save(model, out, {"generation_config.json": {"bos_token_id": 2, "eos_token_id": 2, "pad_token_id": 1,
                                                  "max_new_tokens": 20}})
    return {"final_loss": loss, "steps": steps, "batch": batch}


def train_llava(out, clip_dir, imgs, recs, steps, batch):
    from transformers import CLIPModel, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration
    from mmsuite.chat import LLAVA15_CHAT_TEMPLATE
    from mmsuite.image_processor import ImageProcessor
    tok = write_lm_tokenizer(out, lm_corpus(recs), "llama", 640, chat_template=LLAVA15_CHAT_TEMPLATE)
    V, img_id = tok.get_vocab_size(), tok.token_to_id("<image>")
    with open(os.path.join(out, "preprocessor_config.json"), "w") as f:
        json.dump(preprocessor(WORLD_MEAN, WORLD_STD), f, indent=1)
    clip = CLIPModel.from_pretrained(clip_dir)
    text = LlamaConfig(vocab_size=V, hidden_size=128, intermediate_size=384, num_hidden_layers=3,
                       num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=256,
                       bos_token_id=1, eos_token_id=2, pad_token_id=3, rms_norm_eps=1e-5, tie_word_embeddings=False)
    cfg = LlavaConfig(vision_config=clip.config.vision_config.to_dict(), text_config=text.to_dict(),
                      image_token_index=img_id, projector_hidden_act="gelu", vision_feature_layer=-1,
                      vision_feature_select_strategy="default")
    torch.manual_seed(2)
    model = LlavaForConditionalGeneration(cfg)
    tower = model.model.vision_tower
    tower.load_state_dict(clip.vision_model.state_dict() if not hasattr(tower, "vision_model")
                          else {"vision_model." + k: v for k, v in clip.vision_model.state_dict().items()}, strict=False)
    # The tower is fine-tuned, not frozen: the contrastive CLIP did not learn the shapes' position
    # (its batches never needed it), the answers do.
    n_patch = (synth.SIZE // VISION["patch_size"]) ** 2
    px = pixel_values(imgs, ImageProcessor.from_pretrained(out))
    rng = np.random.default_rng(2)
    describe = "Describe the image in one short sentence."

    def example(s):
        if rng.random() < 0.3:
            q, a = describe, s.caption
        else:
            q, a, _ = s.qa[int(rng.integers(0, len(s.qa)))]
        prompt = tok.encode(f"USER: <image>\n{q} ASSISTANT:").ids
        k = prompt.index(img_id)
        prompt = prompt[:k] + [img_id] * n_patch + prompt[k + 1:]
        target = tok.encode(" " + a, add_special_tokens=False).ids + [2]
        return prompt + target, [-100] * len(prompt) + target

    def batches(step):
        idx = rng.choice(len(recs), batch, replace=False)
        return collate([example(recs[i]) for i in idx], 3, px[idx])
    params = [p for p in model.parameters() if p.requires_grad]
    loss = train(model, params, batches, steps, LR["llava"], "llava")
    save(model, out, {"generation_config.json": {"bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 3,
                                                  "max_new_tokens": 20}})
    return {"final_loss": loss, "steps": steps, "batch": batch, "vision_tower": "initialized from tiny-shapes-clip, fine-tuned with the rest"}


def write_references(weights, out):
    """transformers' outputs of each saved model on fixed held-out inputs (tests/data/bundled):
    the test suite checks mmsuite's loaders reproduce them."""
    import mmsuite
    from transformers import Blip2ForConditionalGeneration, CLIPModel, LlavaForConditionalGeneration
    from mmsuite.image_processor import ImageProcessor
    os.makedirs(out, exist_ok=True)
    samples = [synth.sample("heldout", i) for i in range(4)]
    imgs = np.stack([s.image for s in samples])
    d = os.path.join(weights, "tiny-shapes-clip")
    tok = mmsuite.load_tokenizer(d)
    enc = tok([s.caption for s in samples], context_length=CLIP_CTX)
    px = pixel_values(imgs, ImageProcessor.from_pretrained(d))
    with torch.no_grad():
        o = CLIPModel.from_pretrained(d)(input_ids=torch.tensor(np.asarray(enc["input_ids"], np.int64)),
                                         attention_mask=torch.tensor(np.asarray(enc["attention_mask"], np.int64)),
                                         pixel_values=px)
    np.savez(os.path.join(out, "tiny-shapes-clip.npz"), images=imgs, input_ids=np.asarray(enc["input_ids"]),
             attention_mask=np.asarray(enc["attention_mask"]), pixel_values=px.numpy(),
             image_embeds=o.image_embeds.numpy(), text_embeds=o.text_embeds.numpy())
    from tokenizers import Tokenizer
    for name, cls, prompt in (("tiny-shapes-blip2", Blip2ForConditionalGeneration, QUESTION.format("what shape is shown?")),
                              ("tiny-shapes-llava", LlavaForConditionalGeneration,
                               "USER: <image>\nwhat shape is shown? ASSISTANT:")):
        d = os.path.join(weights, name)
        model = cls.from_pretrained(d).eval()
        t = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
        img_id = t.token_to_id("<image>")
        ids = t.encode(prompt).ids
        if "blip2" in name:
            ids = [img_id] * model.config.num_query_tokens + ids
        else:
            k = ids.index(img_id)
            ids = ids[:k] + [img_id] * (synth.SIZE // VISION["patch_size"]) ** 2 + ids[k + 1:]
        px = pixel_values(imgs[:1], ImageProcessor.from_pretrained(d))
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([ids]), pixel_values=px).logits[0].numpy()
        np.savez(os.path.join(out, f"{name}.npz"), image=imgs[0], input_ids=np.asarray(ids), pixel_values=px.numpy(),
                 logits=logits)
    log("wrote references to", out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default="clip,blip2,llava")
    ap.add_argument("--out", default=os.path.join(HERE, "..", "mmsuite", "weights"))
    ap.add_argument("--train-size", type=int, default=20000)
    ap.add_argument("--clip-steps", type=int, default=1800)
    ap.add_argument("--blip2-steps", type=int, default=1500)
    ap.add_argument("--llava-steps", type=int, default=700)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--references", default=os.path.join(HERE, "..", "tests", "data", "bundled"),
                    help="where transformers' reference outputs of the saved models go")
    ap.add_argument("--references-only", action="store_true")
    ap.add_argument("--lr", type=float, help="learning rate of the models trained in this run")
    ap.add_argument("--patch", type=int, default=VISION["patch_size"])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.lr:
        LR.update({k: args.lr for k in LR})
    VISION["patch_size"] = args.patch
    if args.references_only:
        return write_references(args.out, args.references)
    log(f"torch {torch.__version__}, {args.threads} threads; generating {args.train_size} train samples")
    imgs, recs = make_data(args.train_size)
    only = set(args.only.split(","))
    info = {}
    clip_dir = os.path.join(args.out, "tiny-shapes-clip")
    if "clip" in only:
        info["clip"] = train_clip(clip_dir, imgs, recs, args.clip_steps, args.batch)
    if "blip2" in only:
        info["blip2"] = train_blip2(os.path.join(args.out, "tiny-shapes-blip2"), imgs, recs, args.blip2_steps, args.batch)
    if "llava" in only:
        info["llava"] = train_llava(os.path.join(args.out, "tiny-shapes-llava"), clip_dir, imgs, recs,
                                    args.llava_steps, args.batch)
    for k, v in info.items():
        v.update(train_size=args.train_size, torch=torch.__version__, threads=args.threads)
        d = os.path.join(args.out, f"tiny-shapes-{k}")
        with open(os.path.join(d, "training.json"), "w") as f:
            json.dump(v, f, indent=1)
    log("done", info)


if __name__ == "__main__":
    main()
