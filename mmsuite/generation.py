"""Token generation on the C decoder: greedy, sampling, beam search, streaming, batches.

The C engine (``_C.lm_forward``) runs the model over new tokens of several sequences at once,
each continuing its own KV-cache slot; ``_C.sample`` picks tokens as transformers' logits
processors do (repetition penalty, temperature, top-k, top-p). This module is the loop around
them: prompts are prefilled together (packed, no padding), then every step decodes one token for
each unfinished sequence, until an EOS id, a stop string or ``max_new_tokens``.
"""

from __future__ import annotations

import dataclasses
import math
import operator
import threading
from typing import Iterator, List, Optional, Sequence

import numpy as np

from ._native import _C

__all__ = ["GenerationConfig", "GenerationOutput", "Generator", "TextStreamer"]


# Beam search keeps two banks of num_beams KV slots; a decoder state holds at most 4096.
MAX_BEAMS = 2048


@dataclasses.dataclass
class GenerationConfig:
    """Decoding settings, named and defaulted as in transformers' ``GenerationConfig``.

    ``do_sample=None`` means: sample when a positive ``temperature`` was given, else greedy
    (so ``temperature=0`` is greedy). ``top_k`` applies only when sampling (HF default 50).
    """

    max_new_tokens: int = 64
    min_new_tokens: int = 0
    do_sample: Optional[bool] = None
    temperature: Optional[float] = None
    top_k: int = 50
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    num_beams: int = 1
    length_penalty: float = 1.0
    eos_token_id: Optional[Sequence[int]] = None
    stop_strings: Optional[Sequence[str]] = None
    seed: int = 0

    def resolved(self):
        c = dataclasses.replace(self)
        for name in ("max_new_tokens", "min_new_tokens", "num_beams", "top_k", "seed"):
            v = getattr(c, name)
            try:  # an int, not a float or str that int() would quietly truncate or parse
                setattr(c, name, operator.index(v))
            except TypeError:
                raise TypeError(f"{name} must be an int, got {type(v).__name__} {v!r}") from None
        for name in ("temperature", "top_p", "repetition_penalty", "length_penalty"):
            v = getattr(c, name)
            if v is None and name == "temperature":
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
                raise TypeError(f"{name} must be a number, got {type(v).__name__} {v!r}")
            if not math.isfinite(v):
                raise ValueError(f"{name} must be a finite number, got {v}")
        if c.max_new_tokens < 0:
            raise ValueError(f"max_new_tokens must be >= 0, got {c.max_new_tokens!r}")
        if c.min_new_tokens < 0:
            raise ValueError(f"min_new_tokens must be >= 0, got {c.min_new_tokens!r}")
        if c.temperature is not None and c.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {c.temperature}")
        if c.do_sample and c.temperature is not None and c.temperature <= 0:
            raise ValueError(f"temperature must be > 0 when sampling (do_sample=True), got {c.temperature}; "
                             "use do_sample=False for greedy decoding")
        if c.do_sample is None:
            c.do_sample = bool(c.temperature) and c.temperature > 0
        if c.temperature in (None, 0):
            c.temperature = 1.0
        if not 0 < c.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {c.top_p}")
        if c.top_k < 0:
            raise ValueError(f"top_k must be >= 0, got {c.top_k}")
        if not c.repetition_penalty > 0:
            raise ValueError(f"repetition_penalty must be > 0, got {c.repetition_penalty}")
        if not 1 <= c.num_beams <= MAX_BEAMS:
            raise ValueError(f"num_beams must be in [1, {MAX_BEAMS}], got {c.num_beams}")
        if c.num_beams > 1 and c.do_sample:
            raise ValueError("beam search with sampling is not supported: use num_beams=1 or do_sample=False")
        if c.eos_token_id is not None and not isinstance(c.eos_token_id, (list, tuple)):
            c.eos_token_id = [int(c.eos_token_id)]
        if isinstance(c.stop_strings, str):
            c.stop_strings = [c.stop_strings]
        return c


@dataclasses.dataclass
class GenerationOutput:
    """``sequences``: new token ids per prompt; ``texts`` when a tokenizer was given;
    ``finish_reasons``: "eos", "stop_string" or "length"; ``scores``: beam scores."""

    sequences: List[List[int]]
    texts: Optional[List[str]] = None
    finish_reasons: Optional[List[str]] = None
    scores: Optional[List[float]] = None
    prompt_lengths: Optional[List[int]] = None


def TextStreamer(tokenizer, skip_special_tokens=True):
    """Incremental detokenizer: ``push(id)`` -> text delta, ``flush()`` -> the rest; deltas only
    hold text no later token can change (split UTF-8 characters, byte-fallback runs), and
    concatenated they equal ``tokenizer.decode(all ids)``. See tokenizer_hf.StreamDecoder."""
    from .tokenizer_hf import StreamDecoder
    return StreamDecoder(tokenizer, skip_special_tokens=skip_special_tokens)


def _stop_hit(text: str, stops) -> int:
    """Index where the first stop string starts in text, or -1."""
    best = -1
    for s in stops or ():
        i = text.find(s)
        if i >= 0 and (best < 0 or i < best):
            best = i
    return best


def _suppress_eos(logits, rows, eos):
    """min_new_tokens: EOS impossible for the given rows (transformers' MinNewTokensLength)."""
    if rows and eos:
        logits = np.array(logits, dtype=np.float32, copy=True)
        ids = [e for e in eos if 0 <= e < logits.shape[1]]
        for r in rows:
            logits[r, ids] = -np.inf
    return logits


class Generator:
    """The decoding loop for one model handle. ``prompts`` are (ids, embeds-or-None) pairs:
    ids are the prompt's token ids (the repetition-penalty history), embeds (optional) the
    rows to feed instead of the ids' embeddings (VLMs put image features there). Encoder-decoder
    models (T5) take (decoder_ids, None, encoder_states) triples: the encoder output (n, D) the
    sequence's cross-attention sees."""

    def __init__(self, handle, vocab_size, default_eos=(), kv_dtype="float32", context_length=4096,
                 max_step_tokens=512):
        self.h = handle
        self.V = int(vocab_size)
        self.default_eos = [int(e) for e in default_eos if e is not None and e >= 0]
        self.kv_dtype = kv_dtype
        self.context_length = int(context_length)
        self.max_step_tokens = int(max_step_tokens)
        # stop() bumps the epoch: a run aborts when the epoch moved since it started, so a call
        # starting on another thread cannot swallow the stop (a flag cleared per call could).
        self._epoch = 0
        self._epoch_lock = threading.Lock()

    def stop(self):
        """Make every generation running on this handle raise KeyboardInterrupt before its next
        step (its KV state is freed with it); calls started afterwards are not affected."""
        with self._epoch_lock:
            self._epoch += 1

    def _check_abort(self, epoch):
        if self._epoch != epoch:
            raise KeyboardInterrupt("generation aborted")

    # -- helpers ---------------------------------------------------------------------------
    def _state(self, n_slots, n_ctx, enc_ctx=0):
        return _C.lm_state_new(self.h, n_slots, n_ctx, self.kv_dtype, self.max_step_tokens, enc_ctx=enc_ctx)

    def _check_prompts(self, prompts, cfg):
        """(prompt lengths, KV context per slot, encoder rows per slot) of one call; per call,
        never stored on self: concurrent calls share this Generator."""
        lens = []
        enc = [len(p[2]) for p in prompts if len(p) > 2 and p[2] is not None]
        enc_ctx = max(enc) if enc else 0
        for i, p in enumerate(prompts):
            ids, emb = p[0], p[1]
            n = len(ids)
            if n == 0:
                raise ValueError(f"prompt {i} is empty")
            if emb is not None and len(emb) != n:
                raise ValueError(f"prompt {i}: {len(emb)} embedding rows for {n} ids")
            if n > self.context_length:
                raise ValueError(f"prompt {i} has {n} tokens, more than the context limit of {self.context_length} "
                                 f"tokens (raise context_length when loading, if the model allows)")
            lens.append(n)
        n_ctx = min(max(lens) + cfg.max_new_tokens, self.context_length)
        return lens, n_ctx, enc_ctx

    def _prefill(self, st, prompts, slots):
        """Prefill all prompts in one packed step; returns each prompt's last-row logits."""
        n_new = np.array([len(p[0]) for p in prompts], dtype=np.int64)
        for slot, p in zip(slots, prompts):
            if len(p) > 2 and p[2] is not None:
                _C.lm_state_set_encoder(st, int(slot), np.ascontiguousarray(p[2], dtype=np.float32))
        if all(p[1] is None for p in prompts):
            ids = np.concatenate([np.asarray(p[0], dtype=np.int64) for p in prompts])
            return _C.lm_forward(st, np.asarray(slots, dtype=np.int64), n_new, ids=ids)
        embs = []
        for p in prompts:
            ids, emb = p[0], p[1]
            embs.append(np.asarray(emb, dtype=np.float32) if emb is not None
                        else _C.lm_embed(self.h, np.asarray(ids, dtype=np.int64)))
        return _C.lm_forward(st, np.asarray(slots, dtype=np.int64), n_new, embeds=np.concatenate(embs))

    def _sample(self, logits, histories, rng, cfg):
        H = max(len(h) for h in histories)
        hist = np.full((len(histories), H), -1, dtype=np.int64)
        if cfg.repetition_penalty != 1.0:
            for i, h in enumerate(histories):
                hist[i, :len(h)] = h
        else:
            hist = hist[:, :0]
        return _C.sample(np.ascontiguousarray(logits, dtype=np.float32), hist, rng, do_sample=cfg.do_sample,
                         temperature=float(cfg.temperature), top_k=int(cfg.top_k), top_p=float(cfg.top_p),
                         repetition_penalty=float(cfg.repetition_penalty))

    # -- greedy / sampling, batched -----------------------------------------------------------
    def generate(self, prompts, cfg: GenerationConfig, tokenizer=None) -> GenerationOutput:
        cfg = cfg.resolved()
        if cfg.num_beams > 1:
            outs = [self._beam_search(p, cfg) for p in prompts]
            seqs = [o[0] for o in outs]
            reasons = [o[2] for o in outs]
            texts = [tokenizer.decode(s, skip_special_tokens=True) for s in seqs] if tokenizer else None
            return GenerationOutput(seqs, texts, reasons, [o[1] for o in outs], [len(p[0]) for p in prompts])
        seqs, reasons = [], []
        for item in self._run(prompts, cfg, tokenizer):
            if item[0] == "done":
                seqs, reasons = item[1], item[2]
        texts = None
        if tokenizer is not None:
            texts = []
            for s, r in zip(seqs, reasons):
                t = tokenizer.decode(s, skip_special_tokens=True)
                if r == "stop_string":
                    t = t[:_stop_hit(t, cfg.stop_strings)]
                texts.append(t)
        return GenerationOutput(seqs, texts, reasons, None, [len(p[0]) for p in prompts])

    def stream(self, prompt, cfg: GenerationConfig, tokenizer) -> Iterator[str]:
        """Text deltas of one prompt's continuation (greedy or sampling)."""
        cfg = cfg.resolved()
        if cfg.num_beams > 1:
            raise ValueError("streaming is not available with beam search (num_beams > 1)")
        streamer = TextStreamer(tokenizer)
        text = ""
        held = 0  # characters of text not yet yielded because they might begin a stop string
        longest = max((len(s) for s in cfg.stop_strings or ()), default=0)
        for item in self._run([prompt], cfg, tokenizer):
            if item[0] == "token":
                text += streamer.push(item[2])
            else:
                text += streamer.flush()
            cut = _stop_hit(text, cfg.stop_strings)
            if cut >= 0:
                text = text[:cut]
            safe = len(text) if (item[0] == "done" or cut >= 0) else max(len(text) - max(longest - 1, 0), held)
            if safe > held:
                yield text[held:safe]
                held = safe
            if cut >= 0:
                return

    def _run(self, prompts, cfg, tokenizer):
        """Yields ("token", i, id) per new token and finally ("done", seqs, reasons)."""
        epoch = self._epoch
        lens, n_ctx, enc_ctx = self._check_prompts(prompts, cfg)
        B = len(prompts)
        eos = set(cfg.eos_token_id if cfg.eos_token_id is not None else self.default_eos)
        seqs = [[] for _ in range(B)]
        reasons = ["length"] * B
        if cfg.max_new_tokens == 0:
            yield ("done", seqs, reasons)
            return
        st = self._state(B, n_ctx, enc_ctx)
        rng = _C.rng_new(int(cfg.seed))
        histories = [list(map(int, p[0])) for p in prompts]
        logits = self._prefill(st, prompts, list(range(B)))
        active = list(range(B))
        texts = [""] * B if cfg.stop_strings else None
        streamers = [TextStreamer(tokenizer) for _ in range(B)] if (cfg.stop_strings and tokenizer) else None
        step = 0
        while active:
            self._check_abort(epoch)
            if cfg.min_new_tokens:
                logits = _suppress_eos(logits, [k for k, i in enumerate(active) if len(seqs[i]) < cfg.min_new_tokens], eos)
            ids = self._sample(logits, [histories[i] for i in active], rng, cfg)
            still, feed = [], []
            for k, i in enumerate(active):
                t = int(ids[k])
                seqs[i].append(t)
                histories[i].append(t)
                yield ("token", i, t)
                if t in eos:
                    reasons[i] = "eos"
                    continue
                if streamers is not None:
                    texts[i] += streamers[i].push(t)
                    if _stop_hit(texts[i], cfg.stop_strings) >= 0:
                        reasons[i] = "stop_string"
                        continue
                if len(seqs[i]) >= cfg.max_new_tokens or lens[i] + len(seqs[i]) >= n_ctx:
                    continue
                still.append(i)
                feed.append(t)
            active = still
            step += 1
            if not active:
                break
            logits = _C.lm_forward(st, np.array(active, dtype=np.int64), np.ones(len(active), dtype=np.int64),
                                   ids=np.array(feed, dtype=np.int64))
        yield ("done", seqs, reasons)

    # -- beam search ------------------------------------------------------------------------
    def _beam_search(self, prompt, cfg):
        """Beam search for one prompt, as transformers' BeamSearchScorer (early_stopping=False):
        candidates = top 2*num_beams of (beam score + log_softmax); a candidate ending in EOS
        among the top num_beams becomes a finished hypothesis scored sum_logprobs /
        generated_len ** length_penalty; stop when no live beam can beat the worst kept one."""
        nb = int(cfg.num_beams)
        epoch = self._epoch
        lens, n_ctx, enc_ctx = self._check_prompts([prompt], cfg)
        eos = set(cfg.eos_token_id if cfg.eos_token_id is not None else self.default_eos)
        st = self._state(2 * nb, n_ctx, enc_ctx)  # two banks of nb slots: beams are copied, not moved
        logits = self._prefill(st, [prompt], [0])
        for b in range(1, nb):
            _C.lm_state_op(st, "copy", 0, b)
        logits = np.repeat(logits, nb, axis=0)
        prompt_ids = list(map(int, prompt[0]))
        beams = [[] for _ in range(nb)]
        scores = np.full(nb, -1e9)
        scores[0] = 0.0
        hyps = []  # (score, ids)
        bank = 0
        for cur in range(cfg.max_new_tokens):
            self._check_abort(epoch)
            lg = logits.astype(np.float64)
            if cur < cfg.min_new_tokens:
                lg[:, [e for e in eos if 0 <= e < self.V]] = -np.inf
            if cfg.repetition_penalty != 1.0:
                for b in range(nb):
                    for t in set(prompt_ids + beams[b]):
                        v = lg[b, t]
                        lg[b, t] = v * cfg.repetition_penalty if v < 0 else v / cfg.repetition_penalty
            lg = lg - lg.max(axis=1, keepdims=True)
            logp = lg - np.log(np.exp(lg).sum(axis=1, keepdims=True))
            tot = (logp + scores[:, None]).ravel()
            k = min(2 * nb, tot.size)
            cand = np.argpartition(-tot, k - 1)[:k]
            cand = cand[np.lexsort((cand, -tot[cand]))]  # descending score, stable on index
            nxt = []
            for rank, c in enumerate(cand):
                b, t = divmod(int(c), self.V)
                if t in eos:
                    if rank < nb:
                        gl = max(len(beams[b]), 1)
                        hyps.append((tot[c] / gl ** cfg.length_penalty, beams[b] + [t]))
                    continue
                nxt.append((b, t, tot[c]))
                if len(nxt) == nb:
                    break
            hyps.sort(key=lambda x: -x[0])
            hyps = hyps[:nb]
            if len(hyps) >= nb:
                best_possible = nxt[0][2] / max(cur + 1, 1) ** cfg.length_penalty
                if hyps[-1][0] >= best_possible:
                    break
            if cur + 1 >= cfg.max_new_tokens or lens[0] + cur + 1 >= n_ctx:
                beams = [beams[b] + [t] for b, t, _ in nxt]
                scores = np.array([s for _, _, s in nxt])
                break
            src = bank * nb
            dst = (1 - bank) * nb
            for i, (b, t, s) in enumerate(nxt):
                _C.lm_state_op(st, "copy", src + b, dst + i)
            beams = [beams[b] + [t] for b, t, _ in nxt]
            scores = np.array([s for _, _, s in nxt])
            bank = 1 - bank
            slots = np.arange(bank * nb, bank * nb + nb, dtype=np.int64)
            logits = _C.lm_forward(st, slots, np.ones(nb, dtype=np.int64),
                                   ids=np.array([t for _, t, _ in nxt], dtype=np.int64))
        # unfinished beams compete with the finished hypotheses at their current score
        for b in range(len(beams)):
            gl = max(len(beams[b]), 1)
            hyps.append((scores[b] / gl ** cfg.length_penalty, beams[b]))
        hyps.sort(key=lambda x: -x[0])
        best = hyps[0]
        reason = "eos" if best[1] and best[1][-1] in eos else "length"
        return best[1], float(best[0]), reason
