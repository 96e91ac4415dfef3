"""The runner's inner loop: stream a dataset's items through a model batch by batch, reading
each image once, looking results up in the cache, computing only the misses, committing them
after every batch, timing each batch and ticking the progress bar."""
import os
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .. import _C, get_num_threads
from ..errors import MMSError
from .cache import ResultCache, content_hash

__all__ = ["read_image", "run_items", "progress_bar"]


def progress_bar(total, desc, enabled):
    """A tqdm bar (items/s and ETA) on stderr; a no-op object when disabled."""
    if enabled:
        from tqdm.auto import tqdm
        return tqdm(total=total, desc=desc, unit="item", dynamic_ncols=True, leave=True)

    class _Quiet:
        def update(self, n=1):
            pass

        def set_postfix_str(self, s):
            pass

        def close(self):
            pass
    return _Quiet()


def read_image(src):
    """(content bytes or array for hashing, loader) of an item's image: a path is read once; the
    loader decodes it only when a result must be computed."""
    if isinstance(src, (str, os.PathLike)):
        with open(src, "rb") as f:
            data = f.read()
        return data, lambda: _C.decode_image(data)
    if isinstance(src, (bytes, bytearray, memoryview)):
        data = bytes(src)
        return data, lambda: _C.decode_image(data)
    if isinstance(src, np.ndarray):
        return src, lambda: src
    if hasattr(src, "convert"):  # a PIL image
        arr = np.asarray(src.convert("RGB"))
        return arr, lambda: arr
    raise TypeError(f"image: expected a path, bytes, array or PIL image, got {type(src).__name__}")


def run_items(items, *, cache, kind, model_id, settings, batch_size, compute, content, encode, decode,
              meter, bar, dataset, needs_image=True):
    """Yield (item, output) for every usable item, in order.

    content(item, image_hash) -> the cache key's content part; compute(items, images) -> one
    output per item (images: decoded arrays, or None when needs_image is False); encode/decode
    convert an output to/from cache bytes. A missing or undecodable image is reported on the
    dataset (dataset.report_problem) and the item skipped. Images are decoded in worker threads
    (the C decoder releases the GIL); a batch's time covers decoding and the model call."""
    s = _Stream(cache, kind, model_id, settings, compute, content, encode, decode, meter, bar, dataset, needs_image)
    workers = max(1, min(batch_size, get_num_threads())) if needs_image else 1
    with ThreadPoolExecutor(max_workers=workers) as s.pool:
        batch = []
        for item in items:
            try:
                data, loader = read_image(item["image"]) if needs_image else (None, None)
            except (OSError, TypeError) as e:
                s.skip(item, f"image unreadable: {e}")
                bar.update(1)
                continue
            key = ResultCache.key(kind, model_id, settings, content(item, content_hash(data) if needs_image else None))
            batch.append((item, key, loader))
            if len(batch) >= batch_size:
                yield from s.flush(batch)
                batch = []
        if batch:
            yield from s.flush(batch)


def _decode(loader):
    try:
        return loader(), None
    except (MMSError, ValueError, OSError) as e:
        return None, e


class _Stream:
    """One run_items call's state: looks a batch up in the cache, computes and stores the misses."""

    def __init__(self, cache, kind, model_id, settings, compute, content, encode, decode, meter, bar, dataset,
                 needs_image):
        self.cache, self.kind, self.compute, self.encode, self.decode = cache, kind, compute, encode, decode
        self.meter, self.bar, self.dataset, self.needs_image = meter, bar, dataset, needs_image
        self.pool = None

    def skip(self, item, problem):
        self.dataset.report_problem(item.get("id"), _name(item), problem)
        self.meter.skipped += 1

    def flush(self, batch):
        out = [None] * len(batch)
        todo = []
        for i, (item, key, loader) in enumerate(batch):
            hit = self.cache.get(key)
            if hit is not None:
                out[i] = self.decode(hit)
                self.meter.cached += 1
            else:
                todo.append(i)
        if todo:
            t = time.perf_counter()
            if self.needs_image:
                decoded = list(self.pool.map(_decode, [batch[i][2] for i in todo]))
            else:
                decoded = [(None, None)] * len(todo)
            ok, images = [], []
            for i, (img, err) in zip(todo, decoded):
                if err is not None:
                    self.skip(batch[i][0], f"image does not decode: {err}")
                else:
                    ok.append(i)
                    images.append(img)
            if ok:
                outs = self.compute([batch[i][0] for i in ok], images)
                if len(outs) != len(ok):
                    raise RuntimeError(f"{self.kind}: model returned {len(outs)} results for {len(ok)} inputs")
                self.meter.batch(len(ok), time.perf_counter() - t)
                self.cache.put_many([(batch[i][1], self.encode(o)) for i, o in zip(ok, outs)])
                for i, o in zip(ok, outs):
                    out[i] = o
        for (item, _, _), o in zip(batch, out):
            if o is not None:  # None: the image failed to decode (reported above)
                yield item, o
        self.bar.update(len(batch))


def _name(item):
    img = item.get("image")
    return os.fspath(img) if isinstance(img, (str, os.PathLike)) else f"<item {item.get('id')!r}>"
