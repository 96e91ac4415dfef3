"""The bad-input matrix (issue 7): every input kind x corruption -> the exception it raises.

ROWS below is the one list. Each row builds one bad input under a fresh temporary directory and
hands it to the public API (mmsuite.load, MultimodalSuite, the model objects, tokenizers, the
image functions). test_bad_input then checks, per row:
  * the exception type, and that its message matches the row's regex, which names the file or the
    argument and the problem;
  * no leak: the C allocator holds as many blocks after the failed call as before;
  * no corrupted state: the shared model the row used still gives its reference output;
  * for huge declared sizes (`no_alloc`), that the refusal comes before anything is allocated:
    the call runs under RLIMIT_AS = the address space in use + 1 GiB, and every size those rows
    declare needs > 10 GiB, so an allocation attempt would end in MemoryError instead of the
    expected error. (Skipped under AddressSanitizer, whose shadow memory needs the address space;
    the exception is still checked there.)
Rows with exc=None are inputs that are accepted on purpose (valid data, or handled by
conversion); their callable asserts the outcome, and `match` describes it for the table.

docs/reliability.md's bad-input table is generated from ROWS (tools/write_bad_input_table.py);
test_docs_table_is_current fails when it is stale.
"""
import contextlib
import dataclasses
import gc
import json
import os
import re
import resource
import shutil
import struct
import sys
import tempfile
import zlib
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import mmsuite  # noqa: E402
from mmsuite import _C  # noqa: E402
from mmsuite.errors import ConfigError, FormatError, NonFiniteError, UnsupportedError  # noqa: E402
from mmsuite.image_processor import decode_image, resize  # noqa: E402

DATA = ROOT / "tests" / "data"
WEIGHTS = ROOT / "mmsuite" / "weights"
CLIP_SMALL = DATA / "conformance" / "clip" / "tiny_quickgelu" / "model"  # 0.4 MB, HF CLIP
SHARDED = DATA / "conformance" / "clip" / "tiny_gelu_firsteos_bf16_sharded" / "model"
LM_DIR = DATA / "lm" / "llama_gqa"  # Llama, vocab 96
PNG = DATA / "conformance" / "clip" / "tiny_quickgelu" / "chelsea_96x64.png"
JPG = DATA / "clip_preprocess" / "openai224_chelsea" / "chelsea_q90.jpg"
DOCS = ROOT / "docs" / "reliability.md"
START, END = "<!-- section:bad-inputs:start -->", "<!-- section:bad-inputs:end -->"


@dataclasses.dataclass(frozen=True)
class Row:
    id: str
    kind: str  # input kind (table column 1)
    corruption: str  # what is wrong with it (table column 2)
    run: Callable[[Path], object]  # builds the input under the temp dir and calls the public API
    exc: Optional[type]  # expected exception; None: accepted, run() asserts the outcome
    match: str  # regex the message must match; for accepted rows, the outcome (table text)
    model: Optional[str] = None  # shared model used: re-checked against its reference afterwards
    no_alloc: bool = False  # a huge declared size: must be refused before allocating


# ============================================================== shared models ==============

class _Models:
    """The tiny bundled models, loaded once, each with a reference output to re-check after a
    bad call (state not corrupted). Everything lazy (tokenizer, processor) is warmed up here, so
    the leak check around a row sees only what the row itself allocated."""

    def __init__(self):
        self._m, self._ref = {}, {}

    def get(self, name):
        if name not in self._m:
            if name == "suite":
                s = mmsuite.MultimodalSuite(models={"clip": self.get("clip"), "llava": self.get("llava"),
                                                    "blip2": self.get("blip2")})
                self._m[name] = s
                self._ref[name] = None
                return s
            path = {"clip": WEIGHTS / "tiny-shapes-clip", "lm": LM_DIR, "llava": WEIGHTS / "tiny-shapes-llava",
                    "blip2": WEIGHTS / "tiny-shapes-blip2"}[name]
            m = mmsuite.load(str(path))
            self._m[name] = m
            self._ref[name] = self._output(name, m)
            self._output(name, m)  # twice: caches and lazily built parts exist from now on
        return self._m[name]

    @staticmethod
    def _output(name, m):
        if name == "clip":
            px = np.linspace(-1, 1, 3 * 64 * 64, dtype=np.float32).reshape(1, 3, 64, 64)
            return (m.encode_image(pixel_values=px)["image_embeds"].copy(),
                    m.encode_text(texts=["a red circle", ""])["text_embeds"].copy(),
                    m.tokenizer.decode([5, 6, 7]))
        if name == "lm":
            return m.forward(input_ids=[1, 5, 9, 33]).copy(), m.generate_ids([[1, 5]], max_new_tokens=3).sequences
        if name == "llava":
            return m.ask(str(PNG), "what is this?", max_new_tokens=3), m.tokenizer.decode([5, 6])
        if name == "blip2":
            return m.caption(str(PNG), max_new_tokens=3), m.tokenizer.decode([5, 6])
        raise KeyError(name)

    def release(self):
        """Unload everything (the module's last test is done)."""
        for m in self._m.values():
            if hasattr(m, "unload") and not isinstance(m, mmsuite.MultimodalSuite):
                m.unload()
        self._m.clear()
        self._ref.clear()

    def check(self, name):
        """The model still computes what it did before any bad input."""
        if name == "suite":
            for n in ("clip", "llava", "blip2"):
                self.check(n)
            return
        got, ref = self._output(name, self._m[name]), self._ref[name]
        for g, r in zip(got, ref):
            if isinstance(r, np.ndarray):
                np.testing.assert_allclose(g, r, rtol=1e-6, atol=1e-6)
            else:
                assert g == r


M = _Models()


@pytest.fixture(scope="module", autouse=True)
def _release_models():
    yield
    M.release()
    gc.collect()


def clip():
    return M.get("clip")


def lm():
    return M.get("lm")


def llava():
    return M.get("llava")


def blip2():
    return M.get("blip2")


def suite():
    return M.get("suite")


# ============================================================== input builders =============

def _linked(src, tmp, name, keep=(), drop=()):
    """tmp/name: every file of src symlinked (cheap), except those in `keep`, copied (to edit),
    and those in `drop`, left out."""
    dst = Path(tmp) / name
    dst.mkdir()
    for f in Path(src).iterdir():
        if f.name in drop:
            continue
        if f.name in keep:
            shutil.copy(f, dst / f.name)
        else:
            os.symlink(f, dst / f.name)
    return dst


def _st_read(p):
    b = Path(p).read_bytes()
    n = struct.unpack("<Q", b[:8])[0]
    return json.loads(b[8:8 + n]), b[8 + n:]


def _st_write(p, hdr, data):
    h = json.dumps(hdr).encode()
    h += b" " * (-len(h) % 8)
    Path(p).write_bytes(struct.pack("<Q", len(h)) + h + data)


def _st_load(tmp, edit, src=CLIP_SMALL, file="model.safetensors"):
    """Load a copy of src whose `file` went through edit(path) first."""
    d = _linked(src, tmp, "model", keep=(file,))
    edit(d / file)
    return mmsuite.load(str(d))


def _st_header(edit):
    """edit(hdr, data) on the parsed header (in place), then the file is rewritten."""
    def go(p):
        hdr, data = _st_read(p)
        edit(hdr, data)
        _st_write(p, hdr, data)
    return go


def _raw(b):
    return lambda p: Path(p).write_bytes(b(Path(p).read_bytes()) if callable(b) else b)


def _truncate(n):
    return lambda p: os.truncate(p, n if n >= 0 else os.path.getsize(p) + n)


def _cfg_load(tmp, src, edit, sub=None, loader=None):
    """Load a copy of src whose config.json (or its `sub` object) went through edit(dict)."""
    d = _linked(src, tmp, "model", keep=("config.json",))
    cfg = json.loads((d / "config.json").read_text())
    edit(cfg[sub] if sub else cfg)
    (d / "config.json").write_text(json.dumps(cfg))
    return (loader or mmsuite.load)(str(d))


def _set(key, value):
    return lambda o: o.__setitem__(key, value)


def _del(key):
    return lambda o: o.pop(key)


def _chunk(tag, payload):
    return struct.pack(">I", len(payload)) + tag + payload + struct.pack(">I", zlib.crc32(tag + payload))


def _png(w, h, ihdr_crc_ok=True):
    """An RGB PNG declaring w x h; its pixel data is only real for small sizes (a huge header
    is all a decoder should look at)."""
    ihdr = _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
    if not ihdr_crc_ok:
        ihdr = ihdr[:-4] + b"\0\0\0\0"
    raw = b"".join(b"\0" + b"\x80" * (3 * w) for _ in range(h)) if w * h <= 4096 else b"\0" * 64
    return b"\x89PNG\r\n\x1a\n" + ihdr + _chunk(b"IDAT", zlib.compress(raw)) + _chunk(b"IEND", b"")


def _jpeg_size(w, h):
    """The test JPEG with the size in its SOF header replaced (the data stays as it was)."""
    b = bytearray(JPG.read_bytes())
    i = 2
    while i < len(b):
        marker, length = b[i + 1], struct.unpack(">H", b[i + 2:i + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2):
            b[i + 5:i + 9] = struct.pack(">HH", h, w)
            return bytes(b)
        i += 2 + length
    raise AssertionError("no SOF marker")


def _write(tmp, name, data):
    p = Path(tmp) / name
    p.write_bytes(data)
    return str(p)


def _first_offset_tensor(hdr, ndim=None):
    """The tensor stored first in the data section (optionally of a given rank)."""
    return min((v["data_offsets"][0], k) for k, v in hdr.items()
               if k != "__metadata__" and (ndim is None or len(v["shape"]) == ndim))[1]


def _set_nan(name, value):
    def edit(hdr, data):
        b0, _ = hdr[name]["data_offsets"]
        data[b0:b0 + 40] = np.full(10, value, np.float32).tobytes()
    return edit


def _st_values(edit):
    """Like _st_header, with the data section as a bytearray edit() may change."""
    def go(p):
        hdr, data = _st_read(p)
        data = bytearray(data)
        edit(hdr, data)
        _st_write(p, hdr, bytes(data))
    return go


def _swap_same_size(hdr, data):
    by = {}
    for k, v in hdr.items():
        if k != "__metadata__":
            by.setdefault(v["data_offsets"][1] - v["data_offsets"][0], []).append(k)
    a, b = next(v for v in by.values() if len(v) >= 2)[:2]
    hdr[a]["data_offsets"], hdr[b]["data_offsets"] = hdr[b]["data_offsets"], hdr[a]["data_offsets"]


def _overlap(hdr, data):
    """The third stored tensor moved to start where the second one does (its length kept)."""
    t = sorted((v["data_offsets"][0], k) for k, v in hdr.items() if k != "__metadata__")
    start, moved = t[1][0], t[2][1]
    size = hdr[moved]["data_offsets"][1] - hdr[moved]["data_offsets"][0]
    hdr[moved]["data_offsets"] = [start, start + size]


def _zero_dim(hdr, data):
    k = "text_model.embeddings.position_embedding.weight"
    hdr[k]["shape"] = [0, 48]
    hdr[k]["data_offsets"] = [hdr[k]["data_offsets"][0]] * 2


def _shape(value, name=None):
    def edit(hdr, data):
        hdr[name or _first_offset_tensor(hdr, 2)]["shape"] = value
    return edit


def _index(edit):
    def go(p):
        idx = json.loads(Path(p).read_text())
        edit(idx)
        Path(p).write_text(json.dumps(idx))
    return go


def _shard_drop_tensor(tmp):
    d = _linked(SHARDED, tmp, "model", keep=("model-00002-of-00002.safetensors",))
    p = d / "model-00002-of-00002.safetensors"
    hdr, data = _st_read(p)
    del hdr[sorted(k for k in hdr if k != "__metadata__")[0]]
    _st_write(p, hdr, data)
    return mmsuite.load(str(d))


def _shard_duplicate(tmp):
    """Shard 2 also holds a tensor of shard 1 (its bytes prepended to shard 2's data)."""
    d = _linked(SHARDED, tmp, "model", keep=("model-00002-of-00002.safetensors",))
    h1, d1 = _st_read(d / "model-00001-of-00002.safetensors")
    h2, d2 = _st_read(d / "model-00002-of-00002.safetensors")
    k = sorted(x for x in h1 if x != "__metadata__")[0]
    b0, b1 = h1[k]["data_offsets"]
    for v in h2.values():
        if isinstance(v, dict) and "data_offsets" in v:
            v["data_offsets"] = [o + b1 - b0 for o in v["data_offsets"]]
    h2[k] = dict(h1[k], data_offsets=[0, b1 - b0])
    _st_write(d / "model-00002-of-00002.safetensors", h2, d1[b0:b1] + d2)
    return mmsuite.load(str(d))


def _same(a, b):
    np.testing.assert_array_equal(a, b)
    return True


def _nonfinite_weights(tmp, tensor, value, tower):
    m = _st_load(tmp, _st_values(_set_nan(tensor, value)))
    try:
        if tower == "vision":
            m.encode_image(pixel_values=np.zeros((1, 3, 32, 32), np.float32))
        else:
            m.encode_text(input_ids=np.array([[318, 5, 2]]))
    finally:
        m.unload()


def _rgb(h=20, w=30):
    return (np.arange(h * w * 3) % 251).astype(np.uint8).reshape(h, w, 3)


def _px(n=2, seed=0):
    return np.random.default_rng(seed).standard_normal((n, 3, 64, 64)).astype(np.float32)


IDS = np.array([[692, 5, 6, 693], [692, 7, 8, 693]])


def _gen(**kw):
    return lambda tmp: lm().generate_ids([[1, 5, 9]], **{"max_new_tokens": 2, **kw})


# ============================================================== the matrix =================

ST, SH, CFG, IMG, ARR, TXT, TOK, GEN = ("safetensors file", "sharded index", "config.json", "image",
                                         "numpy array", "text", "token ids", "generation args")

ROWS = [
    # ---- safetensors ------------------------------------------------------------------------
    Row("st-empty", ST, "empty file (0 bytes)", lambda t: _st_load(t, _truncate(0)), FormatError,
        r"model\.safetensors: truncated safetensors file \(0 bytes"),
    Row("st-truncated-header", ST, "cut inside the JSON header", lambda t: _st_load(t, _truncate(100)), FormatError,
        r"model\.safetensors: bad header length \d+ \(file has 100 bytes\)"),
    Row("st-truncated-data", ST, "cut 1000 bytes before the end", lambda t: _st_load(t, _truncate(-1000)), FormatError,
        r"model\.safetensors: tensor '[\w.]+': data_offsets \[\d+, \d+\] past the end of the data .*truncated"),
    Row("st-wrong-magic", ST, "not a safetensors file (an HTML error page)",
        lambda t: _st_load(t, _raw(b"<html><body>404 Not Found</body></html>")), FormatError,
        r"model\.safetensors: bad header length \d+ \(file has 39 bytes\)"),
    Row("st-header-len-2^62", ST, "header length field 2^62", lambda t: _st_load(
        t, _raw(lambda b: struct.pack("<Q", 1 << 62) + b[8:])), FormatError,
        r"model\.safetensors: bad header length 4611686018427387904", no_alloc=True),
    Row("st-header-not-json", ST, "header is not JSON", lambda t: _st_load(
        t, _raw(lambda b: struct.pack("<Q", 16) + b"{not json at all" + b[8 + struct.unpack("<Q", b[:8])[0]:])),
        FormatError, r"model\.safetensors: header is not valid JSON"),
    Row("st-header-not-object", ST, "header is a JSON array", lambda t: _st_load(
        t, _raw(lambda b: struct.pack("<Q", 8) + b"[1, 2]  " + b[8 + struct.unpack("<Q", b[:8])[0]:])),
        FormatError, r"model\.safetensors: header JSON is not an object"),
    Row("st-offsets-past-eof", ST, "a tensor's end offset past the end of the file",
        lambda t: _st_load(t, _st_header(lambda h, d: h[_first_offset_tensor(h, 2)]["data_offsets"].__setitem__(
            1, len(d) + 4096))), FormatError,
        r"model\.safetensors: tensor '[\w.]+': data_offsets \[\d+, \d+\] past the end of the data"),
    Row("st-offsets-reversed", ST, "begin offset > end offset",
        lambda t: _st_load(t, _st_header(lambda h, d: h[_first_offset_tensor(h, 2)].__setitem__(
            "data_offsets", h[_first_offset_tensor(h, 2)]["data_offsets"][::-1]))), FormatError,
        r"model\.safetensors: tensor '[\w.]+': data_offsets must be \[begin, end\] with begin <= end"),
    Row("st-overlap", ST, "two tensors' byte spans overlap", lambda t: _st_load(t, _st_header(_overlap)), FormatError,
        r"model\.safetensors: tensors '[\w.]+' and '[\w.]+' have overlapping data_offsets"),
    Row("st-unsorted", ST, "data stored in another order than the header (two same-size tensors swapped)",
        lambda t: _st_load(t, _st_header(_swap_same_size)).unload(), None,
        "accepted: the format leaves the order free (only overlaps and spans past the end are refused); "
        "the swapped tensors simply hold each other's values"),
    Row("st-shape-span", ST, "shape x dtype size != byte span",
        lambda t: _st_load(t, _st_header(_shape([16, 49]))), FormatError,
        r"model\.safetensors: tensor '[\w.]+': shape x F32 size = 3136 bytes but data_offsets span 3072"),
    Row("st-dim-product", ST, "dims whose product overflows int64 ([2^40, 2^40, 2^40])",
        lambda t: _st_load(t, _st_header(_shape([1 << 40] * 3))), FormatError,
        r"model\.safetensors: tensor '[\w.]+': shape declares more than 2\^48 elements", no_alloc=True),
    Row("st-dim-2^62", ST, "one dim of 2^62", lambda t: _st_load(t, _st_header(_shape([1 << 62])), ), FormatError,
        r"model\.safetensors: tensor '[\w.]+': shape declares more than 2\^48 elements", no_alloc=True),
    Row("st-dim-negative", ST, "negative dim", lambda t: _st_load(t, _st_header(_shape([-16, 48]))), FormatError,
        r"model\.safetensors: tensor '[\w.]+': shape must be non-negative integers"),
    Row("st-dim-zero", ST, "a weight with a zero-sized dim (and an empty span)",
        lambda t: _st_load(t, _st_header(_zero_dim)), FormatError,
        r"model: tensor 'text_model\.embeddings\.position_embedding\.weight' has shape \(0, 48\), expected 16 x 48"),
    Row("st-dtype-unknown", ST, "unknown dtype tag",
        lambda t: _st_load(t, _st_header(lambda h, d: h[_first_offset_tensor(h, 2)].__setitem__("dtype", "F7"))),
        FormatError, r"model\.safetensors: tensor '[\w.]+': unknown dtype 'F7'"),
    Row("st-dtype-f64", ST, "valid tag mmsuite cannot compute with (F64)", lambda t: _st_load(t, _st_header(
        lambda h, d: h["text_model.embeddings.position_embedding.weight"].update(dtype="F64", shape=[16, 24]))),
        UnsupportedError, r"model\.safetensors: tensor '[\w.]+' has dtype F64, which mmsuite cannot compute with"),
    Row("st-tensor-missing", ST, "a tensor the model needs is absent", lambda t: _st_load(t, _st_header(
        lambda h, d: h.pop("text_model.final_layer_norm.weight"))), FileNotFoundError,
        r"tensor 'text_model\.final_layer_norm\.weight' not found in checkpoint .*model\.safetensors"),
    Row("st-no-weights", ST, "checkpoint directory without any .safetensors file",
        lambda t: mmsuite.load(str(_linked(CLIP_SMALL, t, "model", drop=("model.safetensors",)))), FileNotFoundError,
        r"model: no model\.safetensors, model\.safetensors\.index\.json or \*\.safetensors file"),
    # NaN / Inf weights: loading does not scan the weights (they stay memory-mapped, no copy);
    # the first output they reach raises NonFiniteError (the output guard of issue 7 part 6).
    Row("st-nan-weights", ST, "NaN weights (vision tower fc1): load, then encode an image",
        lambda t: _nonfinite_weights(t, "vision_model.encoder.layers.0.mlp.fc1.weight", np.nan, "vision"),
        NonFiniteError, r"non-finite values in the output 'vision_last_hidden_state': \d+ NaN"),
    Row("st-inf-weights", ST, "+Inf weights (text tower fc1): load, then encode a text",
        lambda t: _nonfinite_weights(t, "text_model.encoder.layers.0.mlp.fc1.weight", np.inf, "text"),
        NonFiniteError, r"non-finite values in the output 'text_last_hidden_state'"),
    # ---- sharded checkpoints -----------------------------------------------------------------
    Row("sh-missing-shard", SH, "a shard named in weight_map is absent", lambda t: mmsuite.load(str(
        _linked(SHARDED, t, "model", drop=("model-00002-of-00002.safetensors",)))), FileNotFoundError,
        r"model-00002-of-00002\.safetensors: no such file"),
    Row("sh-tensor-missing", SH, "a shard lacks a tensor weight_map places in it", _shard_drop_tensor, FormatError,
        r"model\.safetensors\.index\.json: tensor '[\w.]+' is listed in weight_map but missing from shard "
        r"model-00002-of-00002\.safetensors"),
    Row("sh-duplicate", SH, "the same tensor in two shards", _shard_duplicate, FormatError,
        r"model-0000[12]-of-00002\.safetensors: tensor '[\w.]+' appears twice"),
    Row("sh-not-json", SH, "index is not JSON", lambda t: _st_load(
        t, _raw(b"{weight_map: ["), src=SHARDED, file="model.safetensors.index.json"), FormatError,
        r"model\.safetensors\.index\.json: not valid JSON"),
    Row("sh-weight-map-list", SH, "weight_map is a list", lambda t: _st_load(
        t, _index(lambda i: i.__setitem__("weight_map", list(i["weight_map"]))), src=SHARDED,
        file="model.safetensors.index.json"), FormatError,
        r"model\.safetensors\.index\.json: missing object 'weight_map'"),
    Row("sh-weight-map-value", SH, "a weight_map value is a number", lambda t: _st_load(
        t, _index(lambda i: i["weight_map"].__setitem__("logit_scale", 3)), src=SHARDED,
        file="model.safetensors.index.json"), FormatError,
        r"model\.safetensors\.index\.json: weight_map\['logit_scale'\] must be a shard file name"),
    Row("sh-weight-map-escape", SH, "a shard path leaving the directory (../)", lambda t: _st_load(
        t, _index(lambda i: i["weight_map"].__setitem__("logit_scale", "../model.safetensors")), src=SHARDED,
        file="model.safetensors.index.json"), FormatError,
        r"model\.safetensors\.index\.json: weight_map\['logit_scale'\] must be a shard file name"),
    Row("sh-shard-truncated", SH, "one shard truncated", lambda t: _st_load(
        t, _truncate(-100), src=SHARDED, file="model-00002-of-00002.safetensors"), FormatError,
        r"model-00002-of-00002\.safetensors: tensor '[\w.]+': data_offsets .* past the end of the data"),
    # ---- config.json -------------------------------------------------------------------------
    Row("cfg-not-json", CFG, "not JSON", lambda t: _st_load(t, _raw(b'{"model_type": clip'), file="config.json"),
        FormatError, r"config\.json: not valid JSON"),
    Row("cfg-not-utf8", CFG, "non-UTF-8 bytes", lambda t: _st_load(
        t, _raw(b'{"model_type": "clip\xff"}'), file="config.json"), FormatError,
        r"config\.json: not valid JSON: 'utf-8' codec can't decode byte 0xff"),
    Row("cfg-not-object", CFG, "a JSON array", lambda t: _st_load(t, _raw(b"[1, 2]"), file="config.json"),
        ConfigError, r"config\.json: expected a JSON object, got a list"),
    Row("cfg-lm-not-object", CFG, "a JSON string (language model loader)", lambda t: _st_load(
        t, _raw(b'"llama"'), src=LM_DIR, file="config.json"), ConfigError,
        r"config\.json: expected a JSON object, got a str"),
    Row("cfg-no-model-type", CFG, "model_type missing", lambda t: _cfg_load(t, CLIP_SMALL, _del("model_type")),
        ConfigError, r"config\.json: missing key 'model_type'"),
    Row("cfg-unknown-model-type", CFG, "model_type not supported", lambda t: _cfg_load(
        t, CLIP_SMALL, _set("model_type", "mamba")), UnsupportedError,
        r"config\.json: model_type 'mamba' is not a contrastive model mmsuite supports"),
    Row("cfg-llava-no-text", CFG, "LLaVA text_config missing", lambda t: _cfg_load(
        t, WEIGHTS / "tiny-shapes-llava", _del("text_config")), ConfigError,
        r"config\.json: vision_config and text_config are required"),
    Row("cfg-wrong-type", CFG, "a size given as a string", lambda t: _cfg_load(
        t, CLIP_SMALL, _set("hidden_size", "48"), sub="text_config"), ConfigError,
        r"config\.json: key 'text_config\.hidden_size' must be an integer"),
    Row("cfg-section-type", CFG, "vision_config is a list", lambda t: _cfg_load(
        t, CLIP_SMALL, _set("vision_config", [40])), ConfigError,
        r"config\.json: key 'vision_config' must be an object"),
    Row("cfg-hidden-huge", CFG, "hidden_size = 10^12", lambda t: _cfg_load(t, LM_DIR, _set("hidden_size", 10**12)),
        ConfigError, r"config\.json: key 'hidden_size' = 1000000000000 is out of range \(expected 1 \.\. 1048576\)",
        no_alloc=True),
    Row("cfg-layers-huge", CFG, "num_hidden_layers = 10^9", lambda t: _cfg_load(
        t, LM_DIR, _set("num_hidden_layers", 10**9)), ConfigError,
        r"config\.json: key 'num_hidden_layers' = 1000000000 is out of range \(expected 1 \.\. 1000\)", no_alloc=True),
    Row("cfg-vocab-huge", CFG, "vocab_size = 10^12", lambda t: _cfg_load(t, LM_DIR, _set("vocab_size", 10**12)),
        ConfigError, r"config\.json: key 'vocab_size' = 1000000000000 is out of range", no_alloc=True),
    Row("cfg-head-dim-huge", CFG, "head_dim = 10^12", lambda t: _cfg_load(t, LM_DIR, _set("head_dim", 10**12)),
        ConfigError, r"config\.json: key 'head_dim' = 1000000000000 is out of range", no_alloc=True),
    Row("cfg-ffn-negative", CFG, "intermediate_size = -1", lambda t: _cfg_load(
        t, LM_DIR, _set("intermediate_size", -1)), ConfigError,
        r"config\.json: key 'intermediate_size' = -1 is out of range"),
    Row("cfg-heads-zero", CFG, "num_attention_heads = 0", lambda t: _cfg_load(
        t, LM_DIR, _set("num_attention_heads", 0)), ConfigError,
        r"config\.json: key 'num_attention_heads' = 0 is out of range"),
    Row("cfg-positions-zero", CFG, "max_position_embeddings = 0", lambda t: _cfg_load(
        t, LM_DIR, _set("max_position_embeddings", 0)), ConfigError,
        r"config\.json: key 'max_position_embeddings' = 0 is out of range"),
    Row("cfg-kv-heads", CFG, "num_key_value_heads not dividing the heads", lambda t: _cfg_load(
        t, LM_DIR, _set("num_key_value_heads", 3)), ConfigError,
        r"config\.json: 4 attention heads cannot share 3 key/value heads"),
    Row("cfg-rope-type", CFG, "unknown rope_scaling type", lambda t: _cfg_load(
        t, LM_DIR, _set("rope_scaling", {"rope_type": "yarn2", "factor": 2.0})), UnsupportedError,
        r"config\.json: rope_scaling type 'yarn2' is not supported"),
    Row("cfg-image-size-huge", CFG, "vision image_size = 10^9", lambda t: _cfg_load(
        t, CLIP_SMALL, _set("image_size", 10**9), sub="vision_config"), ConfigError,
        r"config\.json: key 'vision_config\.image_size' = 1000000000 is out of range", no_alloc=True),
    Row("cfg-patch-zero", CFG, "vision patch_size = 0", lambda t: _cfg_load(
        t, CLIP_SMALL, _set("patch_size", 0), sub="vision_config"), ConfigError,
        r"config\.json: key 'vision_config\.patch_size' = 0 is out of range"),
    Row("cfg-text-positions-huge", CFG, "text max_position_embeddings = 10^12", lambda t: _cfg_load(
        t, CLIP_SMALL, _set("max_position_embeddings", 10**12), sub="text_config"), ConfigError,
        r"config\.json: key 'text_config\.max_position_embeddings' = 1000000000000 is out of range", no_alloc=True),
    Row("cfg-heads-not-dividing", CFG, "hidden_size not a multiple of the heads", lambda t: _cfg_load(
        t, CLIP_SMALL, _set("num_attention_heads", 7), sub="text_config"), ConfigError,
        r"config\.json: text_config: hidden_size 48 must be a positive multiple of num_attention_heads 7"),
    Row("cfg-llava-layers-huge", CFG, "LLaVA text_config.num_hidden_layers = 10^9", lambda t: _cfg_load(
        t, WEIGHTS / "tiny-shapes-llava", _set("num_hidden_layers", 10**9), sub="text_config"), ConfigError,
        r"config\.json: key 'text_config\.num_hidden_layers' = 1000000000 is out of range", no_alloc=True),
    Row("cfg-llava-vision-huge", CFG, "LLaVA vision_config.hidden_size = 10^12", lambda t: _cfg_load(
        t, WEIGHTS / "tiny-shapes-llava", _set("hidden_size", 10**12), sub="vision_config"), ConfigError,
        r"config\.json: key 'vision_config\.hidden_size' = 1000000000000 is out of range", no_alloc=True),
    Row("cfg-blip2-queries-huge", CFG, "BLIP-2 num_query_tokens = 10^12", lambda t: _cfg_load(
        t, WEIGHTS / "tiny-shapes-blip2", _set("num_query_tokens", 10**12)), ConfigError,
        r"config\.json: inconsistent qformer_config .*num_query_tokens 1000000000000", no_alloc=True),
    Row("cfg-shape-mismatch", CFG, "sizes that disagree with the weights (hidden 64, weights 32)",
        lambda t: _cfg_load(t, LM_DIR, _set("hidden_size", 64)), FormatError,
        r"model: tensor 'model\.embed_tokens\.weight' has shape \(96, 32\), expected \(96, 64\)"),
    Row("cfg-missing", CFG, "checkpoint directory without config.json", lambda t: mmsuite.load(str(
        _linked(CLIP_SMALL, t, "model", drop=("config.json",)))), FileNotFoundError,
        r"model: no config\.json or open_clip_config\.json"),
    # ---- images --------------------------------------------------------------------------------
    Row("img-png-truncated", IMG, "PNG cut in half", lambda t: decode_image(
        _write(t, "cut.png", PNG.read_bytes()[:7000])), FormatError, r"cut\.png': PNG: file is truncated"),
    Row("img-jpeg-truncated", IMG, "JPEG cut in half", lambda t: suite().embed(image_path=_write(
        t, "cut.jpg", JPG.read_bytes()[:4000])), FormatError,
        r"image 0 \('.*cut\.jpg'\): JPEG: file is truncated", model="suite"),
    Row("img-wrong-magic", IMG, "GIF signature on PNG data", lambda t: decode_image(
        _write(t, "a.png", b"GIF89a" + PNG.read_bytes()[6:])), FormatError,
        r"a\.png': unknown image format \(not PNG or JPEG; 15342 bytes starting 47 49 46 38"),
    Row("img-not-image", IMG, "a text file named .jpg", lambda t: suite().embed(images=[_write(
        t, "notes.jpg", b"just some text, not an image\n")]), FormatError,
        r"image 0 \('.*notes\.jpg'\): unknown image format \(not PNG or JPEG", model="suite"),
    Row("img-bytes-not-image", IMG, "in-memory bytes that are no image", lambda t: suite().embed(
        images=[b"\x00\x01garbage"]), FormatError, r"image 0 \(<bytes>\): unknown image format", model="suite"),
    Row("img-empty", IMG, "empty file", lambda t: decode_image(_write(t, "empty.png", b"")), FormatError,
        r"empty\.png': empty input \(0 bytes\), not an image"),
    Row("img-missing", IMG, "path does not exist", lambda t: decode_image(str(Path(t) / "nope.png")),
        FileNotFoundError, r"cannot open image '.*nope\.png': No such file or directory"),
    Row("img-directory", IMG, "path is a directory", lambda t: decode_image(str(t)), OSError,
        r"cannot read image '.*': not a regular file"),
    Row("img-png-0x0", IMG, "PNG header declares 0 x 0", lambda t: decode_image(_write(t, "zero.png", _png(0, 0))),
        FormatError, r"zero\.png': PNG: invalid image size 0x0"),
    Row("img-png-huge", IMG, "PNG header declares 100000 x 100000 (30 GB of pixels)", lambda t: decode_image(
        _write(t, "huge.png", _png(100000, 100000))), FormatError,
        r"huge\.png': PNG: image size 100000x100000 exceeds the limit", no_alloc=True),
    Row("img-png-2^31", IMG, "PNG header declares a width of 2^31", lambda t: decode_image(
        _write(t, "wide.png", _png(1 << 31, 1))), FormatError,
        r"wide\.png': PNG: image size 2147483648x1 exceeds the limit", no_alloc=True),
    Row("img-jpeg-huge", IMG, "JPEG header declares 65500 x 65500", lambda t: suite().embed(
        image_path=_write(t, "huge.jpg", _jpeg_size(65500, 65500))), FormatError,
        r"huge\.jpg'\): JPEG: image size 65500x65500 exceeds the limit", model="suite", no_alloc=True),
    Row("img-jpeg-0x0", IMG, "JPEG header declares 0 x 0", lambda t: decode_image(
        _write(t, "zero.jpg", _jpeg_size(0, 0))), FormatError, r"zero\.jpg': JPEG: Empty JPEG image"),
    Row("img-png-crc", IMG, "corrupt IHDR chunk CRC", lambda t: decode_image(
        _write(t, "crc.png", _png(4, 3, ihdr_crc_ok=False))), FormatError, r"crc\.png': PNG: IHDR: CRC error"),
    Row("img-png-idat", IMG, "corrupt compressed pixel data", lambda t: decode_image(_write(
        t, "idat.png", (lambda b: b[:-20] + bytes([b[-20] ^ 0xFF]) + b[-19:])(_png(4, 3)))), FormatError,
        r"idat\.png': PNG: IDAT: incorrect data check"),
    Row("img-llava", IMG, "truncated PNG asked about (LLaVA)", lambda t: llava().ask(
        _write(t, "cut.png", PNG.read_bytes()[:5000]), "what is it?", max_new_tokens=2), FormatError,
        r"image 0 \('.*cut\.png'\): PNG: file is truncated", model="llava"),
    Row("img-blip2", IMG, "non-image captioned (BLIP-2)", lambda t: blip2().caption(_write(
        t, "x.png", b"%PDF-1.4\n"), max_new_tokens=2), FormatError,
        r"image 0 \('.*x\.png'\): unknown image format", model="blip2"),
    # ---- numpy arrays --------------------------------------------------------------------------
    Row("arr-px-float64", ARR, "pixel_values float64", lambda t: _same(
        suite().embed(pixel_values=_px().astype(np.float64))["image"], suite().embed(pixel_values=_px())["image"]),
        None, "accepted: converted once; same embeddings as float32", model="clip"),
    Row("arr-px-noncontig", ARR, "pixel_values non-contiguous (Fortran order, strided view)", lambda t: _same(
        clip().encode_image(pixel_values=np.asfortranarray(_px()))["image_embeds"],
        clip().encode_image(pixel_values=_px())["image_embeds"]) and _same(
        clip().encode_image(pixel_values=np.repeat(_px(), 2, axis=3)[..., ::2])["image_embeds"],
        clip().encode_image(pixel_values=_px())["image_embeds"]), None,
        "accepted: copied to C order; same embeddings as the contiguous array", model="clip"),
    Row("arr-px-uint8", ARR, "pixel_values uint8 (raw pixels)", lambda t: suite().embed(
        pixel_values=np.zeros((1, 3, 64, 64), np.uint8)), ValueError,
        r"pixel_values: expected floating-point preprocessed pixels, got uint8", model="clip"),
    Row("arr-px-complex", ARR, "pixel_values complex64", lambda t: clip().encode_image(
        pixel_values=np.zeros((1, 3, 64, 64), np.complex64)), ValueError,
        r"pixel_values: expected floating-point preprocessed pixels, got complex64", model="clip"),
    Row("arr-px-nan", ARR, "pixel_values holding NaN", lambda t: clip().encode_image(
        pixel_values=np.where(np.arange(3 * 64 * 64).reshape(1, 3, 64, 64) % 7 == 0, np.nan, 0.5).astype(np.float32)),
        NonFiniteError, r"non-finite values in the output '\w+'", model="clip"),
    Row("arr-px-ndim", ARR, "pixel_values with 3 dims", lambda t: suite().embed(pixel_values=_px()[0]), ValueError,
        r"pixel_values: expected 4 dimensions, got shape \(3, 64, 64\)", model="clip"),
    Row("arr-px-size", ARR, "pixel_values of the wrong image size", lambda t: clip().encode_image(
        pixel_values=np.zeros((1, 3, 32, 64), np.float32)), ValueError,
        r"pixel_values: expected float32 \(batch, 3, 64, 64\), got float32 \(1, 3, 32, 64\)", model="clip"),
    Row("arr-px-empty", ARR, "pixel_values batch of 0", lambda t: suite().embed(
        pixel_values=np.zeros((0, 3, 64, 64), np.float32)), ValueError,
        r"pixel_values: empty batch \(shape \(0, 3, 64, 64\)\)", model="clip"),
    Row("arr-ids-float", ARR, "input_ids float64", lambda t: suite().embed(input_ids=IDS.astype(np.float64)),
        ValueError, r"input_ids: expected integer token ids, got float64", model="clip"),
    Row("arr-ids-ndim", ARR, "input_ids 1-D", lambda t: suite().embed(input_ids=IDS[0]), ValueError,
        r"input_ids: expected 2 dimensions, got shape \(4,\)", model="clip"),
    Row("arr-ids-int32-noncontig", ARR, "input_ids int32, non-contiguous", lambda t: _same(
        suite().embed(input_ids=np.asfortranarray(IDS.astype(np.int32)))["text"],
        suite().embed(input_ids=IDS)["text"]), None, "accepted: converted; same embeddings as int64 C order",
        model="clip"),
    Row("arr-ids-uint64", ARR, "input_ids uint64 above int64", lambda t: clip().encode_text(
        input_ids=np.array([[692, 2**63, 693]], np.uint64)), ValueError,
        r"input_ids: id 9223372036854775808 does not fit in int64", model="clip"),
    Row("arr-images-empty", ARR, "images batch of 0", lambda t: suite().embed(images=[]), ValueError,
        r"images: empty batch", model="clip"),
    Row("arr-image-float", ARR, "image array float32 (H, W, 3)", lambda t: suite().embed(
        images=[_rgb().astype(np.float32)]), ValueError,
        r"sources\[0\]: expected a uint8 \(H, W, 3\) RGB array, got format 'f' shape \(20, 30, 3\)", model="clip"),
    Row("arr-image-rgba", ARR, "image array with 4 channels", lambda t: clip().image_processor(
        [np.zeros((20, 30, 4), np.uint8)]), ValueError,
        r"sources\[0\]: expected a uint8 \(H, W, 3\) RGB array, got format 'B' shape \(20, 30, 4\)"),
    Row("arr-image-2d", ARR, "image array 2-D (gray)", lambda t: clip().image_processor(
        [np.zeros((20, 30), np.uint8)]), ValueError, r"sources\[0\]: expected a uint8 \(H, W, 3\) RGB array, got 2 dim"),
    Row("arr-image-0x0", ARR, "image array 0 x 0", lambda t: suite().embed(images=[np.zeros((0, 0, 3), np.uint8)]),
        ValueError, r"sources\[0\]: invalid image shape \(0, 0, 3\)", model="clip"),
    Row("arr-image-noncontig", ARR, "image arrays non-contiguous (strided, Fortran, 4-D batch)", lambda t: _same(
        clip().image_processor([np.repeat(_rgb(), 2, axis=1)[:, ::2], np.asfortranarray(_rgb())]),
        clip().image_processor([_rgb(), _rgb()])) and _same(
        clip().image_processor(np.asfortranarray(np.stack([_rgb(), _rgb()]))), clip().image_processor([_rgb(), _rgb()])),
        None, "accepted: copied to C order; same pixel_values as contiguous arrays"),
    Row("arr-image-not-array", ARR, "image given as an int", lambda t: suite().embed(images=[3]), TypeError,
        r"sources\[0\]: expected a path \(str / os\.PathLike\), encoded bytes or a uint8 \(H, W, 3\) array, got int",
        model="clip"),
    Row("arr-resize-huge", ARR, "resize target 100000 x 100000", lambda t: resize(_rgb(), 100000, 100000),
        ValueError, r"resize_image: 100000x100000 exceeds the limit of 268435456 pixels", no_alloc=True),
    Row("arr-resize-zero", ARR, "resize target width 0", lambda t: resize(_rgb(), 0, 5), ValueError,
        r"resize_image: width and height must be in 1\.\.\d+, got 0x5"),
    Row("arr-llava-px-ndim", ARR, "LLaVA pixel_values with 3 dims", lambda t: llava().image_features(
        np.zeros((3, 64, 64), np.float32)), ValueError, r"pixel_values: expected \(images, 3, S, S\), got shape",
        model="llava"),
    # ---- text ----------------------------------------------------------------------------------
    Row("txt-bytes", TXT, "non-UTF-8 bytes instead of str", lambda t: suite().embed(text=b"\xff\xfe caf\xe9"),
        TypeError, r"text: expected a str", model="clip"),
    Row("txt-bytes-batch", TXT, "bytes inside a batch of texts", lambda t: suite().embed(texts=["ok", b"\xff"]),
        TypeError, r"texts: every item must be a str", model="clip"),
    Row("txt-bytes-tokenizer", TXT, "bytes to a tokenizer's encode", lambda t: clip().tokenizer.encode(b"\xc3\x28"),
        TypeError, r"text must be str, not bytes"),
    Row("txt-surrogate-clip", TXT, "lone surrogate (CLIP)", lambda t: _same(
        clip().encode_text(texts=["a \ud800 b"])["text_embeds"], clip().encode_text(texts=["a \ufffd b"])["text_embeds"]),
        None, "accepted: ftfy replaces it by U+FFFD, as the reference CLIP tokenizer does", model="clip"),
    Row("txt-surrogate-hf", TXT, "lone surrogate (HF tokenizer, LLaVA prompt)", lambda t: llava().generate(
        "hello \udc80", max_new_tokens=2), UnicodeEncodeError,
        r"encode: text holds a lone surrogate \(not valid Unicode text\)", model="llava"),
    Row("txt-surrogate-blip2", TXT, "lone surrogate (BLIP-2 question)", lambda t: blip2().ask(
        str(PNG), "what \ud800?", max_new_tokens=2), UnicodeEncodeError, r"holds a lone surrogate", model="blip2"),
    Row("txt-empty-clip", TXT, "empty string (CLIP)", lambda t: suite().embed(text="")["text"].shape == (128,),
        None, "accepted: encodes as start + end tokens, as the reference", model="clip"),
    Row("txt-empty-question", TXT, "empty question (LLaVA ask)", lambda t: llava().ask(str(PNG), "  "), ValueError,
        r"ask: question must be a non-empty string", model="llava"),
    Row("txt-long-clip", TXT, "text far beyond the context (CLIP, 24 tokens)", lambda t: _same(
        clip().encode_text(texts=["circle " * 10000])["text_embeds"],
        clip().encode_text(texts=["circle " * 30])["text_embeds"]), None,
        "accepted: truncated to the context (last kept token set to end-of-text), as the reference", model="clip"),
    Row("txt-long-clip-strict", TXT, "text beyond the context with truncate=False", lambda t: clip().encode_text(
        texts=["circle " * 100], truncate=False), ValueError,
        r"text 0 has 102 tokens, more than the context length 24 \(truncate is off\)", model="clip"),
    Row("txt-long-llava", TXT, "prompt beyond the context (LLaVA, 256 tokens)", lambda t: llava().generate(
        "hello " * 1000, max_new_tokens=2), ValueError,
        r"prompt 0 has \d+ tokens, more than the context limit of 256 tokens", model="llava"),
    Row("txt-long-blip2", TXT, "prompt beyond the context (BLIP-2, 128 tokens)", lambda t: blip2().generate(
        str(PNG), prompt="a photo of " * 100, max_new_tokens=2), ValueError,
        r"prompt 0 has \d+ tokens, more than the context limit of 128 tokens", model="blip2"),
    # ---- token ids -----------------------------------------------------------------------------
    Row("ids-decode-oov", TOK, "decode an id past the vocabulary (CLIP)", lambda t: clip().tokenizer.decode(
        [5, 100000]), ValueError, r"decode: id 100000 at position 1 is not in the vocabulary \[0, 694\)"),
    Row("ids-decode-negative", TOK, "decode a negative id (HF tokenizer)", lambda t: llava().tokenizer.decode([-1]),
        ValueError, r"decode: id -1 at position 0 is not in the vocabulary \[0, 505\)"),
    Row("ids-decode-float", TOK, "decode float ids", lambda t: llava().tokenizer.decode(np.array([5.0, 6.0])),
        TypeError, r"decode: id at position 0 must be an int, not float"),
    Row("ids-decode-2^70", TOK, "decode an id beyond int64", lambda t: blip2().tokenizer.decode([2**70]), ValueError,
        r"decode: id at position 0 is out of range"),
    Row("ids-clip-oov", TOK, "input_ids past the vocabulary (CLIP)", lambda t: clip().encode_text(
        input_ids=np.array([[692, 100000, 693]])), ValueError,
        r"input_ids\[0, 1\] = 100000 is outside the vocabulary \[0, 694\)", model="clip"),
    Row("ids-clip-too-long", TOK, "input_ids longer than the context (CLIP)", lambda t: clip().encode_text(
        input_ids=np.ones((1, 100), np.int64)), ValueError,
        r"input_ids: 100 tokens exceed the model's context length 24", model="clip"),
    Row("ids-lm-oov", TOK, "prompt id past the vocabulary (LM generate)", lambda t: lm().generate_ids(
        [[1, 500]], max_new_tokens=2), ValueError,
        r"prompts\[0\]: token id 500 at position 1 is outside the vocabulary \[0, 96\)",
        model="lm"),
    Row("ids-lm-negative", TOK, "negative prompt id (LM forward)", lambda t: lm().forward(input_ids=[1, -3]),
        ValueError, r"input_ids: token id -3 at position 1 is outside the vocabulary \[0, 96\)", model="lm"),
    Row("ids-lm-float", TOK, "float prompt ids (LM generate)", lambda t: lm().generate_ids(
        [[1, 2.5]], max_new_tokens=2), TypeError, r"prompts\[0\]: token id at position 1 must be an int, got float",
        model="lm"),
    Row("ids-lm-float-array", TOK, "float32 id array (LM forward)", lambda t: lm().forward(
        input_ids=np.array([1, 2], np.float32)), TypeError,
        r"input_ids: expected a 1-D integer array of token ids, got float32", model="lm"),
    Row("ids-lm-empty", TOK, "no ids (LM forward)", lambda t: lm().forward(input_ids=[]), ValueError,
        r"input_ids: empty", model="lm"),
    Row("ids-lm-empty-prompt", TOK, "an empty prompt in a batch (LM generate)", lambda t: lm().generate_ids(
        [[1, 2], []], max_new_tokens=2), ValueError, r"prompt 1 is empty", model="lm"),
    Row("ids-llava-oov", TOK, "prompt id past the vocabulary (LLaVA generate)", lambda t: llava().generate(
        [1, 100000], max_new_tokens=2), ValueError,
        r"input_ids: token id 100000 at position 1 is outside the vocabulary \[0, 505\)", model="llava"),
    Row("ids-llava-bytes", TOK, "bytes as a prompt (LLaVA generate)", lambda t: llava().generate(
        b"hello", max_new_tokens=2), TypeError,
        r"prompt: expected a str prompt or a sequence of int token ids, got bytes", model="llava"),
    Row("ids-blip2-oov", TOK, "prompt id past the vocabulary (BLIP-2 generate)", lambda t: blip2().generate(
        str(PNG), prompt=[[2, 100000]], max_new_tokens=2), ValueError,
        r"input_ids: token id 100000 at position \d+ is outside the vocabulary \[0, 505\)", model="blip2"),
    Row("ids-blip2-float", TOK, "float prompt ids (BLIP-2 generate)", lambda t: blip2().generate(
        str(PNG), prompt=[[2, 5.5]], max_new_tokens=2), TypeError,
        r"prompt: token id at position 1 must be an int, got float 5\.5", model="blip2"),
    # ---- generation arguments ------------------------------------------------------------------
    Row("gen-max-new-negative", GEN, "max_new_tokens = -1", _gen(max_new_tokens=-1), ValueError,
        r"max_new_tokens must be >= 0, got -1", model="lm"),
    Row("gen-max-new-float", GEN, "max_new_tokens = 2.5", _gen(max_new_tokens=2.5), TypeError,
        r"max_new_tokens must be an int, got float 2\.5", model="lm"),
    Row("gen-temperature-zero-sampling", GEN, "temperature = 0 with do_sample=True",
        _gen(do_sample=True, temperature=0.0), ValueError,
        r"temperature must be > 0 when sampling \(do_sample=True\), got 0\.0", model="lm"),
    Row("gen-temperature-negative", GEN, "temperature = -1", _gen(temperature=-1.0), ValueError,
        r"temperature must be >= 0, got -1\.0", model="lm"),
    Row("gen-temperature-nan", GEN, "temperature = NaN", _gen(temperature=float("nan")), ValueError,
        r"temperature must be a finite number, got nan", model="lm"),
    Row("gen-top-p-zero", GEN, "top_p = 0", _gen(do_sample=True, top_p=0.0), ValueError,
        r"top_p must be in \(0, 1\], got 0\.0", model="lm"),
    Row("gen-top-p-high", GEN, "top_p = 1.5", _gen(top_p=1.5), ValueError, r"top_p must be in \(0, 1\], got 1\.5",
        model="lm"),
    Row("gen-top-k-negative", GEN, "top_k = -1", _gen(top_k=-1), ValueError, r"top_k must be >= 0, got -1",
        model="lm"),
    Row("gen-beams-zero", GEN, "num_beams = 0", _gen(num_beams=0), ValueError,
        r"num_beams must be in \[1, 2048\], got 0", model="lm"),
    Row("gen-beams-huge", GEN, "num_beams = 10^6", _gen(num_beams=10**6), ValueError,
        r"num_beams must be in \[1, 2048\], got 1000000", model="lm", no_alloc=True),
    Row("gen-repetition-zero", GEN, "repetition_penalty = 0", _gen(repetition_penalty=0.0), ValueError,
        r"repetition_penalty must be > 0, got 0\.0", model="lm"),
    Row("gen-unknown", GEN, "an unknown argument", _gen(temprature=0.5), TypeError,
        r"unexpected generation argument\(s\): temprature", model="lm"),
    Row("gen-blip2-top-p", GEN, "top_p = 1.5 (BLIP-2 caption)", lambda t: blip2().caption(str(PNG), top_p=1.5),
        ValueError, r"top_p must be in \(0, 1\], got 1\.5", model="blip2"),
    Row("gen-llava-temperature", GEN, "temperature = -1 (LLaVA ask)", lambda t: llava().ask(
        str(PNG), "what?", temperature=-1.0), ValueError, r"temperature must be >= 0, got -1\.0", model="llava"),
    Row("gen-suite-max-new", GEN, "max_new_tokens = -5 (suite.caption)", lambda t: suite().caption(
        str(PNG), max_new_tokens=-5), ValueError, r"max_new_tokens must be >= 0, got -5", model="suite"),
]


# ============================================================== running a row ==============

def _under_asan():
    try:
        return "libasan" in Path("/proc/self/maps").read_text()
    except OSError:
        return False


@contextlib.contextmanager
def _address_space_limit(extra=1 << 30):
    """RLIMIT_AS = address space in use + extra for the duration (see the module docstring)."""
    if _under_asan():
        yield
        return
    vm = next(int(line.split()[1]) * 1024 for line in Path("/proc/self/status").read_text().splitlines()
              if line.startswith("VmSize:"))
    old = resource.getrlimit(resource.RLIMIT_AS)
    limit = vm + extra
    if old[1] != resource.RLIM_INFINITY:
        limit = min(limit, old[1])
    resource.setrlimit(resource.RLIMIT_AS, (limit, old[1]))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, old)


def run_row(row, tmp, limit_memory=False):
    """Runs row.run(tmp): (exception type or None, message or None)."""
    ctx = _address_space_limit() if limit_memory else contextlib.nullcontext()
    try:
        with ctx:
            row.run(Path(tmp))
    except Exception as e:  # noqa: BLE001 - the type is what is checked
        return type(e), str(e)
    return None, None


def _live_blocks():
    gc.collect()
    _C.trim_memory()
    return _C.memory_stats()["live_blocks"]


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_bad_input(row, tmp_path):
    if row.model:
        M.get(row.model)  # loaded and warmed up outside the leak check
    before = _live_blocks()
    exc, msg = run_row(row, tmp_path, limit_memory=row.no_alloc)
    if row.exc is None:
        assert exc is None, f"{row.id}: accepted input raised {exc.__name__}: {msg}"
    else:
        assert exc is not None, f"{row.id}: expected {row.exc.__name__}, nothing was raised"
        assert issubclass(exc, row.exc), f"{row.id}: expected {row.exc.__name__}, got {exc.__name__}: {msg}"
        assert exc is not MemoryError
        assert re.search(row.match, msg), f"{row.id}: message {msg!r} does not match {row.match!r}"
    assert _live_blocks() == before, f"{row.id}: C allocator blocks leaked"
    if row.model:
        M.check(row.model)


def test_rows_are_unique_and_cover_every_kind():
    assert len({r.id for r in ROWS}) == len(ROWS)
    assert {r.kind for r in ROWS} == {ST, SH, CFG, IMG, ARR, TXT, TOK, GEN}
    assert sum(r.no_alloc for r in ROWS) >= 10


# ============================================================== the docs table =============

def _clean(msg, tmp):
    msg = msg.replace(str(tmp), "<tmp>").replace(str(ROOT), "<repo>")
    msg = " ".join(msg.split())
    if len(msg) > 170:
        msg = msg[:167] + "..."
    return msg.replace("|", "\\|")


def table_markdown():
    """The docs section: a short preamble and one table line per row, from running each row."""
    lines = [
        "Generated by `tools/write_bad_input_table.py` from the rows of `tests/test_bad_inputs.py` (one",
        "parametrized test per row; `test_docs_table_is_current` fails when this table is stale). Each test",
        "also checks the message names the file or argument, that no C allocator block leaks, and that the",
        "model used still gives its reference output afterwards. Rows marked **no-alloc** declare sizes",
        "needing > 10 GiB and run under an address-space limit of the current size + 1 GiB: they must be",
        "refused before anything is allocated. Paths are shown as `<tmp>` / `<repo>`.",
        "",
        "| input kind | corruption | exception | message (example) |",
        "| --- | --- | --- | --- |",
    ]
    for row in ROWS:
        with tempfile.TemporaryDirectory() as tmp:
            exc, msg = run_row(row, tmp)
            if row.exc is None:
                name, text = "none (accepted)", row.match
            else:
                name = exc.__name__ if exc else "(nothing raised)"
                text = f"`{_clean(msg, tmp)}`" if msg is not None else ""
        corruption = row.corruption + (" **no-alloc**" if row.no_alloc else "")
        lines.append(f"| {row.kind} | {corruption} | {name} | {text} |")
    return "\n".join(lines) + "\n"


def docs_with_table(text, table):
    """docs text with the bad-inputs section replaced (nothing outside the markers changes)."""
    i, j = text.index(START), text.index(END)
    return text[:i + len(START)] + "\n" + table + text[j:]


def test_docs_table_is_current():
    text = DOCS.read_text(encoding="utf-8")
    assert docs_with_table(text, table_markdown()) == text, \
        "docs/reliability.md bad-input table is stale: run .venv/bin/python tools/write_bad_input_table.py"
