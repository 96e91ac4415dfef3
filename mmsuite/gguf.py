"""GGUF files (llama.cpp's single-file checkpoints): the reader and the dequantizers.

`read_gguf(path)` memory-maps a GGUF v2/v3 file and returns its metadata and tensor table;
`GGUFFile.tensor(name)` dequantizes one tensor to float32 with NumPy (block layouts as in
ggml-quants.c). Turning a file into a checkpoint directory is mmsuite/gguf_convert.py's job.
Everything is checked against the file size before anything is allocated, so a corrupt or
hostile file raises FormatError naming the file instead of exhausting memory."""
import struct

import numpy as np

from .errors import FormatError, UnsupportedError

__all__ = ["GGUFFile", "GGUFTensor", "read_gguf", "dequantize", "GGML_TYPES", "VALUE_TYPES"]

MAGIC = b"GGUF"
DEFAULT_ALIGNMENT = 32
MAX_DIMS = 4  # GGML_MAX_DIMS

# GGUF metadata value types: id -> (name, struct format or None for string / array).
VALUE_TYPES = {
    0: ("uint8", "<B"), 1: ("int8", "<b"), 2: ("uint16", "<H"), 3: ("int16", "<h"),
    4: ("uint32", "<I"), 5: ("int32", "<i"), 6: ("float32", "<f"), 7: ("bool", "<?"),
    8: ("string", None), 9: ("array", None), 10: ("uint64", "<Q"), 11: ("int64", "<q"),
    12: ("float64", "<d"),
}
STRING, ARRAY = 8, 9
_NUMPY_OF = {0: "<u1", 1: "<i1", 2: "<u2", 3: "<i2", 4: "<u4", 5: "<i4", 6: "<f4", 7: "?",
             10: "<u8", 11: "<i8", 12: "<f8"}

# ggml_type id -> (name, elements per block, bytes per block). The ids and sizes are ggml's
# (ggml.h / ggml.c type_traits); the ones without a dequantizer below raise UnsupportedError.
GGML_TYPES = {
    0: ("F32", 1, 4), 1: ("F16", 1, 2), 2: ("Q4_0", 32, 18), 3: ("Q4_1", 32, 20),
    6: ("Q5_0", 32, 22), 7: ("Q5_1", 32, 24), 8: ("Q8_0", 32, 34), 9: ("Q8_1", 32, 36),
    10: ("Q2_K", 256, 84), 11: ("Q3_K", 256, 110), 12: ("Q4_K", 256, 144), 13: ("Q5_K", 256, 176),
    14: ("Q6_K", 256, 210), 15: ("Q8_K", 256, 292), 16: ("IQ2_XXS", 256, 66), 17: ("IQ2_XS", 256, 74),
    18: ("IQ3_XXS", 256, 98), 19: ("IQ1_S", 256, 50), 20: ("IQ4_NL", 32, 18), 21: ("IQ3_S", 256, 110),
    22: ("IQ2_S", 256, 82), 23: ("IQ4_XS", 256, 136), 24: ("I8", 1, 1), 25: ("I16", 1, 2),
    26: ("I32", 1, 4), 27: ("I64", 1, 8), 28: ("F64", 1, 8), 29: ("IQ1_M", 256, 56),
    30: ("BF16", 1, 2), 34: ("TQ1_0", 256, 54), 35: ("TQ2_0", 256, 66), 39: ("MXFP4", 32, 17),
}


class GGUFTensor:
    """One entry of the tensor table. shape is NumPy order (ggml's ne reversed: rows first);
    offset is absolute in the file; data is a read-only uint8 view of the memory map."""

    __slots__ = ("name", "shape", "ggml_type", "offset", "nbytes", "data")

    def __init__(self, name, shape, ggml_type, offset, nbytes, data):
        self.name, self.shape, self.ggml_type = name, shape, ggml_type
        self.offset, self.nbytes, self.data = offset, nbytes, data

    @property
    def type_name(self):
        return GGML_TYPES[self.ggml_type][0]

    def __repr__(self):
        return f"GGUFTensor({self.name!r}, shape={self.shape}, type={self.type_name})"


class GGUFFile:
    """A parsed GGUF file: version, metadata (key -> value; numeric arrays as NumPy arrays,
    string arrays as lists), metadata_types (key -> value type id, ARRAY keys as (9, element
    type)), tensors (name -> GGUFTensor, in file order). The tensors borrow from the memory
    map, which lives as long as this object or any array it returned without copying."""

    def __init__(self, path, version, metadata, metadata_types, tensors, alignment):
        self.path, self.version, self.alignment = path, version, alignment
        self.metadata, self.metadata_types, self.tensors = metadata, metadata_types, tensors

    def tensor(self, name):
        """The tensor `name` dequantized to float32 (a new array), shaped as in NumPy order."""
        t = self.tensors.get(name)
        if t is None:
            raise KeyError(f"{self.path}: no tensor {name!r}")
        return dequantize(t.data, t.ggml_type, t.shape, f"{self.path}: tensor {name!r}")


# ==== reading ======================================================================================

class _Cursor:
    """Little-endian reads over a buffer; every read is bounds-checked against the file."""

    def __init__(self, buf, path):
        self.buf, self.path, self.pos, self.size = buf, path, 0, len(buf)

    def fail(self, what):
        return FormatError(f"{self.path}: {what} (at byte {self.pos} of {self.size})")

    def need(self, n, what):
        if n > self.size - self.pos:
            raise self.fail(f"truncated file: {what} needs {n} bytes, {self.size - self.pos} remain")

    def scalar(self, fmt, what):
        n = struct.calcsize(fmt)
        self.need(n, what)
        v = struct.unpack_from(fmt, self.buf, self.pos)[0]
        self.pos += n
        return v

    def string(self, what):
        n = self.scalar("<Q", what + " length")
        self.need(n, what)
        raw = bytes(self.buf[self.pos:self.pos + n])
        self.pos += n
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise self.fail(f"{what} is not valid UTF-8: {e}") from None


def _read_value(cur, vtype, what, depth=0):
    if vtype not in VALUE_TYPES:
        raise cur.fail(f"{what}: unknown metadata value type {vtype}")
    if vtype == STRING:
        return cur.string(what)
    if vtype != ARRAY:
        return cur.scalar(VALUE_TYPES[vtype][1], what)
    etype = cur.scalar("<I", what + " element type")
    count = cur.scalar("<Q", what + " element count")
    if etype not in VALUE_TYPES:
        raise cur.fail(f"{what}: unknown array element type {etype}")
    if depth > 8:
        raise cur.fail(f"{what}: arrays nested more than 8 deep")
    fmt = VALUE_TYPES[etype][1]
    # Every element takes at least this many bytes: refuse counts the file cannot hold.
    least = struct.calcsize(fmt) if fmt else (8 if etype == STRING else 12)
    if count > (cur.size - cur.pos) // least:
        raise cur.fail(f"{what}: array declares {count} {VALUE_TYPES[etype][0]} elements, "
                       f"more than the {cur.size - cur.pos} remaining bytes can hold")
    if fmt:
        n = count * struct.calcsize(fmt)
        a = np.frombuffer(cur.buf, dtype=_NUMPY_OF[etype], count=count, offset=cur.pos).copy()
        cur.pos += n
        return a
    return [_read_value(cur, etype, f"{what}[{i}]", depth + 1) for i in range(count)]


def _value_type_of(cur, vtype):
    if vtype != ARRAY:
        return vtype
    return (ARRAY, struct.unpack_from("<I", cur.buf, cur.pos)[0])


def read_gguf(path):
    """Parse the GGUF file at `path` (memory-mapped). FormatError for anything malformed;
    UnsupportedError for GGUF v1 and big-endian files."""
    path = str(path)
    try:
        mm = np.memmap(path, dtype=np.uint8, mode="r")
    except ValueError:  # numpy refuses to map an empty file
        raise FormatError(f"{path}: empty file, not GGUF") from None
    cur = _Cursor(memoryview(mm), path)
    cur.need(8, "the header")
    if bytes(mm[:4]) != MAGIC:
        raise FormatError(f"{path}: not a GGUF file (magic {bytes(mm[:4])!r}, expected {MAGIC!r})")
    cur.pos = 4
    version = cur.scalar("<I", "version")
    if version not in (2, 3):
        if version == 1:
            raise UnsupportedError(f"{path}: GGUF version 1 is not supported (only 2 and 3; re-convert with llama.cpp)")
        if struct.unpack(">I", struct.pack("<I", version))[0] in (2, 3):
            raise UnsupportedError(f"{path}: big-endian GGUF is not supported")
        raise FormatError(f"{path}: unknown GGUF version {version} (supported: 2, 3)")
    n_tensors = cur.scalar("<Q", "tensor count")
    n_kv = cur.scalar("<Q", "metadata count")
    # A metadata entry is at least 12 bytes (key length + value type), a tensor entry 24.
    if n_kv > cur.size // 12 or n_tensors > cur.size // 24:
        raise cur.fail(f"header declares {n_tensors} tensors and {n_kv} metadata entries, more than the file can hold")
    metadata, types = {}, {}
    for i in range(n_kv):
        key = cur.string(f"metadata key {i}")
        if key in metadata:
            raise cur.fail(f"metadata key {key!r} appears twice")
        vtype = cur.scalar("<I", f"metadata {key!r} type")
        if vtype == ARRAY:
            cur.need(4, f"metadata {key!r} element type")
        types[key] = _value_type_of(cur, vtype)
        metadata[key] = _read_value(cur, vtype, f"metadata {key!r}")
    alignment = metadata.get("general.alignment", DEFAULT_ALIGNMENT)
    if not isinstance(alignment, int) or isinstance(alignment, bool) or alignment <= 0 or alignment & (alignment - 1):
        raise FormatError(f"{path}: general.alignment must be a power of two, got {alignment!r}")
    infos = []
    for i in range(n_tensors):
        name = cur.string(f"tensor {i} name")
        n_dims = cur.scalar("<I", f"tensor {name!r} dimension count")
        if not 1 <= n_dims <= MAX_DIMS:
            raise cur.fail(f"tensor {name!r}: {n_dims} dimensions (GGUF allows 1 to {MAX_DIMS})")
        ne = [cur.scalar("<Q", f"tensor {name!r} dimension") for _ in range(n_dims)]
        gtype = cur.scalar("<I", f"tensor {name!r} type")
        offset = cur.scalar("<Q", f"tensor {name!r} offset")
        infos.append((name, ne, gtype, offset))
    data_start = -(-cur.pos // alignment) * alignment
    tensors = {}
    for name, ne, gtype, offset in infos:
        if name in tensors:
            raise FormatError(f"{path}: tensor {name!r} appears twice")
        tensors[name] = _tensor_entry(path, mm, name, ne, gtype, data_start + offset, offset, alignment)
    return GGUFFile(path, version, metadata, types, tensors, alignment)


def _tensor_entry(path, mm, name, ne, gtype, start, rel, alignment):
    where = f"{path}: tensor {name!r}"
    if gtype not in GGML_TYPES:
        raise UnsupportedError(f"{where}: unknown ggml type {gtype}")
    tname, block, block_bytes = GGML_TYPES[gtype]
    if ne[0] % block:
        raise FormatError(f"{where}: first dimension {ne[0]} is not a multiple of the {tname} block size {block}")
    if rel % alignment:
        raise FormatError(f"{where}: data offset {rel} is not aligned to {alignment}")
    count = 1
    for d in ne:
        count *= d
    nbytes = count // block * block_bytes
    if start + nbytes > len(mm):
        raise FormatError(f"{where}: data [{start}, {start + nbytes}) lies past the end of the file ({len(mm)} bytes)")
    return GGUFTensor(name, tuple(reversed(ne)), gtype, start, nbytes, mm[start:start + nbytes])


# ==== dequantization ===============================================================================
# Each takes the raw blocks as a (n_blocks, block_bytes) uint8 array and returns float32
# (n_blocks, block) following ggml-quants.c dequantize_row_* (float32 arithmetic, same order).

def _f16(blocks, at):
    return blocks[:, at:at + 2].copy().view("<f2").astype(np.float32)


def _nibbles(qs):
    """(n, k) bytes -> (n, 2k): low nibbles are elements 0..k-1, high nibbles k..2k-1."""
    return np.concatenate([qs & 0x0F, qs >> 4], axis=1)


def _high_bits(blocks, at):
    """Q5 qh: bit j of the little-endian uint32 is the fifth bit of element j (0..31)."""
    qh = blocks[:, at:at + 4].copy().view("<u4")
    return ((qh >> np.arange(32, dtype=np.uint32)) & 1).astype(np.uint8) << 4


def _q4_0(b):
    return (_nibbles(b[:, 2:18]).astype(np.float32) - 8) * _f16(b, 0)


def _q4_1(b):
    return _nibbles(b[:, 4:20]).astype(np.float32) * _f16(b, 0) + _f16(b, 2)


def _q5_0(b):
    q = _nibbles(b[:, 6:22]) | _high_bits(b, 2)
    return (q.astype(np.float32) - 16) * _f16(b, 0)


def _q5_1(b):
    q = _nibbles(b[:, 8:24]) | _high_bits(b, 4)
    return q.astype(np.float32) * _f16(b, 0) + _f16(b, 2)


def _q8_0(b):
    return b[:, 2:34].view(np.int8).astype(np.float32) * _f16(b, 0)


def _k_scales(sc):
    """Q4_K / Q5_K: 12 bytes -> eight 6-bit scales and eight 6-bit mins (get_scale_min_k4)."""
    sc = sc.astype(np.uint8)
    scales = np.concatenate([sc[:, 0:4] & 63, (sc[:, 8:12] & 0x0F) | ((sc[:, 0:4] >> 6) << 4)], axis=1)
    mins = np.concatenate([sc[:, 4:8] & 63, (sc[:, 8:12] >> 4) | ((sc[:, 4:8] >> 6) << 4)], axis=1)
    return scales.astype(np.float32), mins.astype(np.float32)


def _k_quants_4bit(qs):
    """128 bytes -> 8 sub-blocks of 32: for each 32-byte chunk, low nibbles then high nibbles."""
    q = qs.reshape(-1, 4, 32)
    return np.stack([q & 0x0F, q >> 4], axis=2).reshape(-1, 8, 32)


def _q4_k(b):
    d, dmin = _f16(b, 0), _f16(b, 2)
    scales, mins = _k_scales(b[:, 4:16])
    q = _k_quants_4bit(b[:, 16:144]).astype(np.float32)
    return ((d * scales)[:, :, None] * q - (dmin * mins)[:, :, None]).reshape(-1, 256)


def _q5_k(b):
    d, dmin = _f16(b, 0), _f16(b, 2)
    scales, mins = _k_scales(b[:, 4:16])
    qh = b[:, 16:48]
    high = (qh[:, None, :] >> np.arange(8, dtype=np.uint8)[None, :, None]) & 1  # sub-block j uses bit j
    q = (_k_quants_4bit(b[:, 48:176]) | (high << 4)).astype(np.float32)
    return ((d * scales)[:, :, None] * q - (dmin * mins)[:, :, None]).reshape(-1, 256)


def _q6_k(b):
    ql, qh = b[:, 0:128].reshape(-1, 2, 64), b[:, 128:192].reshape(-1, 2, 1, 32)
    sc = b[:, 192:208].view(np.int8).astype(np.float32).reshape(-1, 2, 8)
    d = _f16(b, 208)[:, :, None]
    shifts = np.array([0, 2, 4, 6], dtype=np.uint8)[None, None, :, None]
    high = (qh >> shifts) & 3                                       # (n, 2, 4, 32)
    low = np.stack([ql[:, :, 0:32] & 0x0F, ql[:, :, 32:64] & 0x0F, ql[:, :, 0:32] >> 4, ql[:, :, 32:64] >> 4], axis=2)
    q = (low | (high << 4)).astype(np.int8).astype(np.float32) - 32  # (n, 2, 4, 32)
    # element l of quarter k in half h uses scale sc[h, 2k + l // 16]
    s = (d * sc).reshape(-1, 2, 4, 2, 1)
    return (s * q.reshape(-1, 2, 4, 2, 16)).reshape(-1, 256)


_DEQUANT = {2: _q4_0, 3: _q4_1, 6: _q5_0, 7: _q5_1, 8: _q8_0, 12: _q4_k, 13: _q5_k, 14: _q6_k}
_PLAIN = {0: "<f4", 1: "<f2", 28: "<f8", 24: "<i1", 25: "<i2", 26: "<i4"}


def dequantize(raw, ggml_type, shape, what="tensor"):
    """float32 array of `shape` from the raw bytes of a tensor of `ggml_type` (a ggml_type id)."""
    if ggml_type not in GGML_TYPES:
        raise UnsupportedError(f"{what}: unknown ggml type {ggml_type}")
    tname, block, block_bytes = GGML_TYPES[ggml_type]
    count = int(np.prod(shape, dtype=np.int64))
    raw = np.asarray(raw, dtype=np.uint8).reshape(-1)
    if raw.size != count // block * block_bytes or count % block:
        raise FormatError(f"{what}: {raw.size} bytes do not hold {count} {tname} values")
    if ggml_type in _PLAIN:
        out = raw.view(_PLAIN[ggml_type]).astype(np.float32)
    elif ggml_type == 30:  # BF16: the high half of a float32
        out = (raw.view("<u2").astype(np.uint32) << 16).view(np.float32)
    elif ggml_type in _DEQUANT:
        out = _DEQUANT[ggml_type](raw.reshape(-1, block_bytes))
    else:
        raise UnsupportedError(f"{what}: ggml type {tname} is not supported (supported: F32, F16, BF16, Q4_0, "
                               "Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K)")
    return np.ascontiguousarray(out, dtype=np.float32).reshape(shape)
