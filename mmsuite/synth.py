"""A deterministic synthetic image-text world: coloured shapes with counts, positions and
textures on a noisy background, each image with its attributes, captions and question-answer
pairs. The bundled demo models were trained on its "train" split (tools/train_tiny_models.py);
the demo and the tests evaluate on the "heldout" split (other seeds: images never seen in
training). Pure NumPy; the same (split, index) always gives the same image, bit for bit.

    from mmsuite import synth
    s = synth.sample("heldout", 3)
    s.image            # (64, 64, 3) uint8
    s.caption          # "two striped red circles on the left"
    s.qa               # [("what colour are the shapes?", "red", "other"), ...]
    synth.write_split("heldout", 200, "out/images")   # PNG files + items for the harness
"""
import os
import struct
import zlib
from dataclasses import dataclass, field

import numpy as np

__all__ = ["SHAPES", "COLOURS", "COUNTS", "POSITIONS", "TEXTURES", "Sample", "sample", "caption_variants",
           "write_png", "write_split", "SIZE"]

SIZE = 64
SHAPES = ("circle", "square", "triangle", "cross")
COLOURS = {"red": (215, 40, 40), "green": (40, 160, 60), "blue": (45, 85, 215), "yellow": (230, 205, 35),
           "purple": (135, 60, 175), "orange": (240, 135, 30)}
COUNTS = ("one", "two", "three")
POSITIONS = {"left": "on the left", "right": "on the right", "top": "at the top", "bottom": "at the bottom",
             "middle": "in the middle"}
TEXTURES = ("plain", "striped", "dotted")
_SPLIT_SEED = {"train": 1_000_003, "heldout": 7_000_001}
_PLURAL = {"circle": "circles", "square": "squares", "triangle": "triangles", "cross": "crosses"}


@dataclass
class Sample:
    image: np.ndarray
    shape: str
    colour: str
    count: int
    position: str
    texture: str
    caption: str = ""
    qa: list = field(default_factory=list)


def _region(position):
    """(y0, y1, x0, x1) of the area the shapes are placed in."""
    h = SIZE // 2
    return {"left": (4, SIZE - 4, 2, h - 2), "right": (4, SIZE - 4, h + 2, SIZE - 2), "top": (2, h - 2, 4, SIZE - 4),
            "bottom": (h + 2, SIZE - 2, 4, SIZE - 4), "middle": (14, SIZE - 14, 14, SIZE - 14)}[position]


def _mask(shape, r, cy, cx):
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    dy, dx = yy - cy, xx - cx
    if shape == "circle":
        return dy * dy + dx * dx <= r * r
    if shape == "square":
        return (np.abs(dy) <= r * 0.85) & (np.abs(dx) <= r * 0.85)
    if shape == "triangle":  # apex up
        return (dy <= r * 0.8) & (dy >= -r) & (np.abs(dx) <= (dy + r) * 0.62)
    return ((np.abs(dy) <= r * 0.32) & (np.abs(dx) <= r)) | ((np.abs(dx) <= r * 0.32) & (np.abs(dy) <= r))


def _texture(texture, rng):
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    if texture == "striped":
        period = int(rng.integers(3, 5))
        return ((yy + xx) // 2 % period) != 0  # diagonal stripes: where the colour shows
    if texture == "dotted":
        return ~(((yy % 4) == 1) & ((xx % 4) == 1))
    return np.ones((SIZE, SIZE), bool)


def _render(shape, colour, count, position, texture, rng):
    bg = np.array([rng.integers(200, 246)] * 3, np.float32) + rng.integers(-12, 13, 3)
    img = np.empty((SIZE, SIZE, 3), np.float32)
    img[:] = bg
    img += rng.normal(0, 6, (SIZE, SIZE, 1))
    y0, y1, x0, x1 = _region(position)
    base = np.array(COLOURS[colour], np.float32)
    r = float(rng.uniform(4.5, 6.5) if count > 1 else rng.uniform(6.5, 9.0))
    centres = []
    for _ in range(count):
        for _try in range(60):  # rejection sampling: shapes do not overlap
            cy = float(rng.uniform(y0 + r, y1 - r)) if y1 - y0 > 2 * r else (y0 + y1) / 2
            cx = float(rng.uniform(x0 + r, x1 - r)) if x1 - x0 > 2 * r else (x0 + x1) / 2
            if all((cy - a) ** 2 + (cx - b) ** 2 > (2.3 * r) ** 2 for a, b in centres):
                break
        centres.append((cy, cx))
    tex = _texture(texture, rng)
    for cy, cx in centres:
        m = _mask(shape, r, cy, cx)
        col = np.clip(base + rng.integers(-18, 19, 3), 0, 255)
        img[m & tex] = col
        img[m & ~tex] = np.clip(col * 0.35 + 160, 0, 255)
    return np.clip(img + rng.normal(0, 3, img.shape), 0, 255).astype(np.uint8)


def _caption(shape, colour, count, position, texture):
    noun = shape if count == 1 else _PLURAL[shape]
    tex = "" if texture == "plain" else texture + " "
    head = "a" if count == 1 else COUNTS[count - 1]
    return f"{head} {tex}{colour} {noun} {POSITIONS[position]}"


def caption_variants(s, rng):
    """Training captions: the full caption, with a prefix sometimes, or a partial description
    (so short prompts such as "a circle" or "red shapes" are in distribution)."""
    noun = s.shape if s.count == 1 else _PLURAL[s.shape]
    k = int(rng.integers(0, 10))
    if k < 5:
        return ["", "a photo of ", "an image of ", "a picture of "][int(rng.integers(0, 4))] + s.caption
    if k == 5:
        return f"{'a' if s.count == 1 else COUNTS[s.count - 1]} {noun}"
    if k == 6:
        return f"{s.colour} {'shape' if s.count == 1 else 'shapes'}"
    if k == 7:
        return f"{'a' if s.count == 1 else COUNTS[s.count - 1]} {s.colour} {noun}"
    if k == 8:
        return f"{noun} {POSITIONS[s.position]}"
    return f"{s.texture} {noun}" if s.texture != "plain" else f"plain {s.colour} {noun}"


def _qa(shape, colour, count, position, texture, rng):
    plural = count > 1
    other = SHAPES[(SHAPES.index(shape) + 1 + int(rng.integers(0, len(SHAPES) - 1))) % len(SHAPES)]
    asked = shape if rng.random() < 0.5 else other
    return [(f"what colour {'are the shapes' if plural else 'is the shape'}?", colour, "other"),
            ("what shape is shown?", shape, "other"),
            ("how many shapes are there?", COUNTS[count - 1], "number"),
            (f"where {'are the shapes' if plural else 'is the shape'}?", position, "other"),
            (f"is there a {asked}?", "yes" if asked == shape else "no", "yes/no"),
            (f"what pattern {'do the shapes' if plural else 'does the shape'} have?", texture, "other")]


def sample(split, index, **fixed):
    """The index-th sample of a split ("train" or "heldout"). fixed: attribute values to use
    instead of the drawn ones (shape, colour, count, position, texture), e.g. to make hard
    negatives that differ in one attribute."""
    if split not in _SPLIT_SEED:
        raise ValueError(f"split must be one of {sorted(_SPLIT_SEED)}, not {split!r}")
    if index < 0:
        raise ValueError("index must be >= 0")
    bad = set(fixed) - {"shape", "colour", "count", "position", "texture"}
    if bad:
        raise ValueError(f"unknown attribute(s) {sorted(bad)}")
    rng = np.random.default_rng([_SPLIT_SEED[split], int(index)])
    shape = SHAPES[int(rng.integers(0, len(SHAPES)))]
    colour = list(COLOURS)[int(rng.integers(0, len(COLOURS)))]
    count = int(rng.integers(1, 4))
    position = list(POSITIONS)[int(rng.integers(0, len(POSITIONS)))]
    texture = TEXTURES[int(rng.integers(0, len(TEXTURES)))]
    shape, colour, count = fixed.get("shape", shape), fixed.get("colour", colour), fixed.get("count", count)
    position, texture = fixed.get("position", position), fixed.get("texture", texture)
    img = _render(shape, colour, count, position, texture, rng)
    return Sample(img, shape, colour, count, position, texture, _caption(shape, colour, count, position, texture),
                  _qa(shape, colour, count, position, texture, rng))


def write_png(path, image):
    """An (H, W, 3) uint8 array as an 8-bit RGB PNG (zlib; no dependencies)."""
    a = np.ascontiguousarray(image, dtype=np.uint8)
    if a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"write_png: need an (H, W, 3) uint8 array, got shape {a.shape}")
    h, w = a.shape[:2]
    raw = b"".join(b"\0" + a[y].tobytes() for y in range(h))

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) + \
        chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as f:
        f.write(png)
    os.replace(tmp, path)


def write_split(split, n, directory, start=0):
    """Write samples start..start+n-1 as PNGs into directory (kept if already there) and return
    harness items: one per image with its caption, attributes, and one record per question."""
    os.makedirs(directory, exist_ok=True)
    images, questions = [], []
    for i in range(start, start + n):
        s = sample(split, i)
        path = os.path.join(directory, f"{split}_{i:05d}.png")
        if not os.path.exists(path):
            write_png(path, s.image)
        images.append({"id": i, "image": path, "captions": [s.caption], "shape": s.shape, "colour": s.colour,
                       "count": COUNTS[s.count - 1], "position": s.position, "texture": s.texture})
        for j, (q, a, t) in enumerate(s.qa):
            questions.append({"id": i * 10 + j, "question_id": i * 10 + j, "image": path, "question": q,
                              "answer": a, "answer_type": t, "question_type": q.split()[0] + " " + q.split()[1]})
    return images, questions
