"""The benchmark's on-disk result cache and the identities it is keyed by.

An entry is keyed by (kind, model identity, settings, input content): the same image under
another name is a hit, a changed checkpoint or setting is a miss. Entries are committed after
every batch, so an interrupted run resumes where it stopped. SQLite (stdlib) in WAL mode, one
file: ``<cache_dir>/results.sqlite``."""
import hashlib
import json
import os
import sqlite3
import threading

import numpy as np

__all__ = ["ResultCache", "model_identity", "content_hash"]

_SAMPLE = 1 << 16  # bytes read from the start, middle and end of each weight file
_SMALL = 1 << 20  # files up to this size are hashed whole (configs, tokenizers)
_WEIGHT_EXT = (".safetensors", ".bin", ".pt", ".pth", ".model", ".gguf")


def _hash_file(h, path):
    size = os.path.getsize(path)
    h.update(f"{os.path.basename(path)}\0{size}\0".encode())
    with open(path, "rb") as f:
        if size <= _SMALL:
            h.update(f.read())
            return
        if path.endswith(".safetensors"):  # the header names every tensor, shape and dtype
            n = int.from_bytes(f.read(8), "little")
            h.update(f.read(min(n, 16 << 20)))
        for off in (0, size // 2 - _SAMPLE // 2, size - _SAMPLE):
            f.seek(off)
            h.update(f.read(_SAMPLE))


def model_identity(model):
    """A short stable id of a loaded model: its class, dtype, device, the mmsuite version and the
    content of its checkpoint directory (small files whole; weight files by size, safetensors
    header and sampled bytes -- a retrained or edited checkpoint gets a new id without reading
    gigabytes). Returns {"id", "class", "path", "dtype", "device"}."""
    from .. import __version__
    path = getattr(model, "path", None)
    h = hashlib.sha256()
    info = {"class": type(model).__name__, "path": os.fspath(path) if path is not None else None,
            "dtype": str(getattr(model, "dtype", "")), "device": str(getattr(model, "device", "cpu"))}
    h.update(json.dumps([info["class"], info["dtype"], info["device"], __version__]).encode())
    if path is not None and os.path.isdir(path):
        for name in sorted(os.listdir(path)):
            p = os.path.join(path, name)
            if os.path.isfile(p) and (name.endswith(_WEIGHT_EXT) or name.endswith((".json", ".txt", ".gz", ".model"))):
                _hash_file(h, p)
    else:
        h.update(repr(id(model)).encode())  # an in-memory object: valid for this process only
    info["id"] = h.hexdigest()[:24]
    return info


def content_hash(data):
    """blake2b of an image's bytes (or of an array's dtype, shape and bytes)."""
    h = hashlib.blake2b(digest_size=16)
    if isinstance(data, np.ndarray):
        h.update(f"{data.dtype.str}{data.shape}".encode())
        h.update(np.ascontiguousarray(data).tobytes())
    else:
        h.update(bytes(data))
    return h.hexdigest()


class ResultCache:
    """Key -> bytes store. ``path=None`` keeps nothing (every lookup misses)."""

    def __init__(self, path):
        self.path = path
        self.hits = 0
        self.misses = 0
        self._lock = threading.Lock()
        self._db = None
        if path is not None:
            os.makedirs(path, exist_ok=True)
            try:
                self._db = sqlite3.connect(os.path.join(path, "results.sqlite"), check_same_thread=False)
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("CREATE TABLE IF NOT EXISTS entries (key TEXT PRIMARY KEY, value BLOB NOT NULL)")
                self._db.commit()
            except sqlite3.DatabaseError as e:
                raise OSError(f"benchmark cache {path}: cannot open results.sqlite ({e}); "
                              f"delete it or pass another cache_dir") from None

    @staticmethod
    def key(kind, model_id, settings, content):
        s = json.dumps(settings, sort_keys=True, default=str)
        return hashlib.sha256(f"{kind}\0{model_id}\0{s}\0{content}".encode()).hexdigest()

    def get(self, key):
        if self._db is None:
            self.misses += 1
            return None
        with self._lock:
            row = self._db.execute("SELECT value FROM entries WHERE key = ?", (key,)).fetchone()
        if row is None:
            self.misses += 1
            return None
        self.hits += 1
        return row[0]

    def put_many(self, pairs):
        """Store [(key, bytes)] and commit (one transaction per batch)."""
        if self._db is None or not pairs:
            return
        with self._lock:
            self._db.executemany("INSERT OR REPLACE INTO entries (key, value) VALUES (?, ?)", pairs)
            self._db.commit()

    def __len__(self):
        if self._db is None:
            return 0
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM entries").fetchone()[0]

    def clear(self):
        if self._db is not None:
            with self._lock:
                self._db.execute("DELETE FROM entries")
                self._db.commit()

    def close(self):
        if self._db is not None:
            self._db.close()
            self._db = None

    # typed helpers
    @staticmethod
    def pack_array(a):
        return np.ascontiguousarray(a, dtype=np.float32).tobytes()

    @staticmethod
    def unpack_array(b):
        return np.frombuffer(b, dtype=np.float32)
