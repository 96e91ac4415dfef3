"""The runner's inner loop: stream a dataset's items through a model batch by batch, reading
each image once, looking results up in the cache, computing only the misses, committing them
after every batch, timing each batch and ticking the progress bar."""
import os
import time

import numpy as np

from .. import _C
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
    dataset (dataset.report_problem) and the item skipped."""
    batch = []

    def flush():
        todo, ready = [], []
        for item, key, loader in batch:
            hit = cache.get(key)
            if hit is not None:
                ready.append((item, decode(hit)))
                meter.cached += 1
            else:
                todo.append((item, key, loader))
                ready.append((item, None))
        if todo:
            images, ok = [], []
            for item, key, loader in todo:
                try:
                    images.append(loader() if needs_image else None)
                    ok.append((item, key))
                except (MMSError, ValueError, OSError) as e:
                    dataset.report_problem(item.get("id"), _name(item), f"image does not decode: {e}")
                    meter.skipped += 1
            if ok:
                t = time.perf_counter()
                outs = compute([it for it, _ in ok], images)
                meter.batch(len(ok), time.perf_counter() - t)
                if len(outs) != len(ok):
                    raise RuntimeError(f"{kind}: model returned {len(outs)} results for {len(ok)} inputs")
                done = {id(it): o for (it, _), o in zip(ok, outs)}
                cache.put_many([(key, encode(done[id(it)])) for it, key in ok])
                ready = [(it, done.get(id(it)) if o is None else o) for it, o in ready]
        for it, o in ready:
            if o is not None:  # None: the image failed to decode (reported above)
                yield it, o
        bar.update(len(batch))
        batch.clear()

    for item in items:
        try:
            data, loader = read_image(item["image"]) if needs_image else (None, None)
        except (OSError, TypeError) as e:
            dataset.report_problem(item.get("id"), _name(item), f"image unreadable: {e}")
            meter.skipped += 1
            bar.update(1)
            continue
        h = content_hash(data) if needs_image else None
        batch.append((item, ResultCache.key(kind, model_id, settings, content(item, h)), loader))
        if len(batch) >= batch_size:
            yield from flush()
    if batch:
        yield from flush()


def _name(item):
    img = item.get("image")
    return os.fspath(img) if isinstance(img, (str, os.PathLike)) else f"<item {item.get('id')!r}>"
