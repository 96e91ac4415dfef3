"""Evaluation datasets for MultimodalBenchmark: loaders that stream items, never images.

Each loader reads only the annotation file(s) up front; images stay on disk until the runner
reads them batch by batch. Iterating yields plain dicts:

    {"id": ..., "image": "/path/img.jpg",            # every item
     "captions": ["...", ...],                          # captioning / retrieval sets
     "question": "...", "question_id": ..., "answers": [{"answer": "...", "answer_id": 1}, ...],
     "answer_type": "...", "question_type": "...",      # VQA sets
     "label": "golden retriever", "target": 3}          # classification sets

An item whose image file is missing (or whose annotation is malformed) is not yielded: it is
recorded in ``dataset.problems`` as {"item", "file", "problem"} and counted in
``dataset.skipped`` (the runner adds images that fail to decode). Nothing is dropped silently.

Loaders: :class:`CocoCaptions` (COCO captions annotation JSON + image folder),
:class:`KarpathySplit` (``dataset_coco.json`` / ``dataset_flickr30k.json``),
:class:`Flickr30k` (CSV ``image,caption`` rows or ``results.csv``'s ``image_name| comment_number|
comment``, or JSON), :class:`VQAv2` (questions + annotations JSON), :class:`ImageFolder` (a folder
per class) and :class:`ListDataset` (a list of dicts, or a .json/.jsonl file of them).
:func:`load_dataset` picks one from a path."""
import csv
import io
import json
import os

from .errors import FormatError

__all__ = ["Dataset", "CocoCaptions", "KarpathySplit", "Flickr30k", "VQAv2", "ImageFolder", "ListDataset",
           "load_dataset", "IMAGE_EXTENSIONS"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")


def _read_json(path, what):
    try:
        with open(path, "rb") as f:
            return json.loads(f.read())
    except FileNotFoundError:
        raise FileNotFoundError(f"{what}: {path}: no such file") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise FormatError(f"{what}: {path}: not valid JSON ({e})") from None


def _vqa_answers(answers):
    """Official VQAv2 annotations keep their 10 {answer, answer_id, ...} dicts. A single answer
    string (or a list of strings) becomes 10 annotator answers (answer ids 1..10), so the
    official leave-one-out accuracy is exact match after its normalization."""
    if isinstance(answers, str):
        answers = [answers]
    if not isinstance(answers, (list, tuple)) or not answers:
        raise ValueError("answers must be a non-empty string or list")
    if all(isinstance(a, dict) and isinstance(a.get("answer"), str) for a in answers):
        return [dict(a, answer_id=a.get("answer_id", i + 1)) for i, a in enumerate(answers)]
    if not all(isinstance(a, str) for a in answers):
        raise ValueError("answers must be strings or {'answer': str} dicts")
    if len(answers) == 1:
        answers = answers * 10
    return [{"answer": a, "answer_id": i + 1} for i, a in enumerate(answers)]


class Dataset:
    """Base class: subclasses implement ``_items()`` yielding candidate items (image paths not yet
    checked). Iteration checks each image exists and records problems instead of raising."""

    task = None  # "captioning", "vqa", "classification" or None (as the items allow)
    classes = None  # classification sets: class names, index = target

    def __init__(self, name, source):
        self.name = name
        self.source = source
        self.problems = []
        self._seen_problems = set()
        self._count = None

    @property
    def skipped(self):
        return len(self.problems)

    def report_problem(self, item_id, file, problem):
        key = (repr(item_id), file, problem)
        if key not in self._seen_problems:  # iterating twice does not double-count
            self._seen_problems.add(key)
            self.problems.append({"item": item_id, "file": file, "problem": problem})

    def _items(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def __iter__(self):
        return self.stream()

    def stream(self, on_skip=None):
        """Iterate the usable items; on_skip() is called for each one skipped (a progress bar)."""
        for item in self._items():
            if "problem" in item:
                self.report_problem(item.get("id"), item.get("image"), item["problem"])
            elif isinstance(item["image"], (str, os.PathLike)) and not os.path.isfile(item["image"]):
                self.report_problem(item["id"], os.fspath(item["image"]), "image file not found")
            else:
                yield item
                continue
            if on_skip is not None:
                on_skip()

    def __len__(self):
        """Candidate items (before skipping bad ones)."""
        if self._count is None:
            self._count = sum(1 for _ in self._items())
        return self._count

    def describe(self):
        return {"name": self.name, "loader": type(self).__name__, "source": self.source,
                "items": len(self), "skipped": self.skipped, "problems": list(self.problems)}

    def __repr__(self):
        return f"{type(self).__name__}({self.source!r}, items={len(self)})"


class CocoCaptions(Dataset):
    """COCO captions: ``captions_val2014.json`` (``images`` + ``annotations``) and the image folder."""
    task = "captioning"

    def __init__(self, annotations, image_dir, limit=None):
        super().__init__(os.path.basename(annotations), annotations)
        data = _read_json(annotations, "COCO captions annotation")
        if not isinstance(data, dict) or not isinstance(data.get("images"), list) \
                or not isinstance(data.get("annotations"), list):
            raise FormatError(f"COCO captions annotation: {annotations}: needs 'images' and 'annotations' lists")
        self.image_dir = image_dir
        self._images = data["images"][:limit] if limit else data["images"]
        self._caps = {}
        for a in data["annotations"]:
            if isinstance(a, dict) and "image_id" in a and isinstance(a.get("caption"), str):
                self._caps.setdefault(a["image_id"], []).append(a["caption"])

    def _items(self):
        for im in self._images:
            iid = im.get("id") if isinstance(im, dict) else None
            name = im.get("file_name") if isinstance(im, dict) else None
            if iid is None or not isinstance(name, str):
                yield {"id": iid, "image": None, "problem": "image entry without id / file_name"}
                continue
            caps = self._caps.get(iid)
            if not caps:
                yield {"id": iid, "image": name, "problem": "image has no caption annotation"}
                continue
            yield {"id": iid, "image": os.path.join(self.image_dir, name), "captions": caps}


class KarpathySplit(Dataset):
    """Karpathy split JSON (``dataset_coco.json``, ``dataset_flickr30k.json``): ``images`` with
    ``filepath``/``filename``, ``split`` and ``sentences[].raw``. split: "test", "val", "train"
    ("train" includes "restval")."""
    task = "captioning"

    def __init__(self, path, image_root, split="test", limit=None):
        super().__init__(f"{os.path.basename(path)}:{split}", path)
        data = _read_json(path, "Karpathy split")
        if not isinstance(data, dict) or not isinstance(data.get("images"), list):
            raise FormatError(f"Karpathy split: {path}: needs an 'images' list")
        want = {"train": ("train", "restval")}.get(split, (split,))
        self.image_root = image_root
        self._images = [im for im in data["images"] if isinstance(im, dict) and im.get("split") in want]
        if limit:
            self._images = self._images[:limit]

    def _items(self):
        for im in self._images:
            iid = im.get("cocoid", im.get("imgid", im.get("filename")))
            caps = [s["raw"] for s in im.get("sentences", ()) if isinstance(s, dict) and isinstance(s.get("raw"), str)]
            if not isinstance(im.get("filename"), str) or not caps:
                yield {"id": iid, "image": im.get("filename"), "problem": "entry without filename or sentences"}
                continue
            path = os.path.join(self.image_root, im.get("filepath", ""), im["filename"])
            yield {"id": iid, "image": path, "captions": caps}


_IMAGE_COLUMNS = ("image", "image_name", "filename", "file_name", "image_path", "path")
_CAPTION_COLUMNS = ("caption", "comment", "captions", "sentences", "raw", "sentence", "text")


class Flickr30k(Dataset):
    """Flickr30k-style captions: a CSV with one row per caption (``image,caption``; also the
    original ``results.csv`` with ``image_name| comment_number| comment``, or a ``raw`` column
    holding a JSON list of captions as in the HF CSV export), or a JSON list of
    ``{"image"/"filename": ..., "caption"/"captions"/"sentences": ...}``. Rows of one image are
    grouped in first-seen order. split: keep only rows whose ``split`` column equals it."""
    task = "captioning"

    def __init__(self, path, image_dir, split=None, limit=None):
        super().__init__(os.path.basename(path), path)
        self.image_dir = image_dir
        rows = self._read_rows(path)
        groups, self._bad = {}, []
        for n, row in enumerate(rows):
            if split is not None and row.get("split") not in (None, split):
                continue
            img = next((row[c] for c in _IMAGE_COLUMNS if isinstance(row.get(c), str) and row[c].strip()), None)
            cap = next((row[c] for c in _CAPTION_COLUMNS if row.get(c) not in (None, "")), None)
            if isinstance(cap, str) and cap.lstrip().startswith("["):
                try:
                    cap = json.loads(cap)
                except ValueError:
                    pass
            if isinstance(cap, dict):
                cap = cap.get("raw")
            caps = [c.get("raw") if isinstance(c, dict) else c for c in (cap if isinstance(cap, list) else [cap])]
            caps = [c.strip() for c in caps if isinstance(c, str) and c.strip()]
            if img is None or not caps:
                self._bad.append({"id": f"row {n + 1}", "image": img, "problem": "row without image or caption"})
                continue
            groups.setdefault(img.strip(), []).extend(caps)
        self._groups = list(groups.items())[:limit] if limit else list(groups.items())

    @staticmethod
    def _read_rows(path):
        if path.lower().endswith(".json"):
            data = _read_json(path, "Flickr30k captions")
            if isinstance(data, dict):
                data = data.get("images", data.get("annotations"))
            if not isinstance(data, list):
                raise FormatError(f"Flickr30k captions: {path}: expected a list of records")
            return [r if isinstance(r, dict) else {} for r in data]
        try:
            with open(path, newline="", encoding="utf-8") as f:
                text = f.read()
        except FileNotFoundError:
            raise FileNotFoundError(f"Flickr30k captions: {path}: no such file") from None
        except UnicodeDecodeError as e:
            raise FormatError(f"Flickr30k captions: {path}: not UTF-8 text ({e})") from None
        first = text.split("\n", 1)[0]
        delim = "|" if first.count("|") > first.count(",") else ","
        reader = csv.DictReader(io.StringIO(text), delimiter=delim, skipinitialspace=True)
        if not reader.fieldnames or not any(c in _IMAGE_COLUMNS for c in (h.strip() for h in reader.fieldnames)):
            raise FormatError(f"Flickr30k captions: {path}: header needs one of {_IMAGE_COLUMNS}, got {reader.fieldnames}")
        return [{(k or "").strip(): (v.strip() if isinstance(v, str) else v) for k, v in r.items()} for r in reader]

    def _items(self):
        yield from self._bad
        for img, caps in self._groups:
            yield {"id": img, "image": os.path.join(self.image_dir, img), "captions": caps}


class VQAv2(Dataset):
    """VQAv2: the questions JSON (``questions``: image_id, question, question_id), optionally the
    annotations JSON (answers, answer_type, question_type; without it only predictions are made),
    and the COCO image folder. An image is found as ``COCO_<data_subtype>_<id:012d>.jpg`` (2014
    names) or ``<id:012d>.jpg`` (2017 names)."""
    task = "vqa"

    def __init__(self, questions, image_dir, annotations=None, limit=None):
        super().__init__(os.path.basename(questions), questions)
        q = _read_json(questions, "VQAv2 questions")
        if not isinstance(q, dict) or not isinstance(q.get("questions"), list):
            raise FormatError(f"VQAv2 questions: {questions}: needs a 'questions' list")
        self.image_dir = image_dir
        self.subtype = q.get("data_subtype", "val2014")
        self._questions = q["questions"][:limit] if limit else q["questions"]
        self._anns = None
        if annotations is not None:
            a = _read_json(annotations, "VQAv2 annotations")
            if not isinstance(a, dict) or not isinstance(a.get("annotations"), list):
                raise FormatError(f"VQAv2 annotations: {annotations}: needs an 'annotations' list")
            self._anns = {x.get("question_id"): x for x in a["annotations"] if isinstance(x, dict)}

    def _image_path(self, image_id):
        for name in (f"COCO_{self.subtype}_{int(image_id):012d}.jpg", f"{int(image_id):012d}.jpg"):
            p = os.path.join(self.image_dir, name)
            if os.path.isfile(p):
                return p
        return os.path.join(self.image_dir, f"COCO_{self.subtype}_{int(image_id):012d}.jpg")

    def _items(self):
        for q in self._questions:
            qid = q.get("question_id") if isinstance(q, dict) else None
            if qid is None or not isinstance(q.get("question"), str) or not isinstance(q.get("image_id"), int):
                yield {"id": qid, "image": None, "problem": "question without question_id / question / image_id"}
                continue
            item = {"id": qid, "question_id": qid, "question": q["question"], "image": self._image_path(q["image_id"]),
                    "image_id": q["image_id"]}
            if self._anns is not None:
                ann = self._anns.get(qid)
                if ann is None or not isinstance(ann.get("answers"), list):
                    yield {"id": qid, "image": item["image"], "problem": "question has no annotation"}
                    continue
                item.update(answers=ann["answers"], answer_type=ann.get("answer_type", "other"),
                            question_type=ann.get("question_type", "none of the above"))
            yield item


class ImageFolder(Dataset):
    """Classification: ``root/<class>/<image>``; classes sorted by folder name (as torchvision's
    ImageFolder), their label text the folder name with '_' as spaces (or ``labels=``)."""
    task = "classification"

    def __init__(self, root, labels=None, limit_per_class=None):
        super().__init__(os.path.basename(os.path.normpath(root)), root)
        if not os.path.isdir(root):
            raise FileNotFoundError(f"image folder: {root}: no such directory")
        dirs = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
        if not dirs:
            raise FormatError(f"image folder: {root}: no class sub-folders")
        if labels is not None and len(labels) != len(dirs):
            raise ValueError(f"labels: {len(labels)} given for {len(dirs)} class folders in {root}")
        self.class_dirs = dirs
        self.classes = list(labels) if labels is not None else [d.replace("_", " ") for d in dirs]
        self.limit_per_class = limit_per_class

    def _items(self):
        for target, d in enumerate(self.class_dirs):
            files = sorted(f for f in os.listdir(os.path.join(self.source, d))
                           if f.lower().endswith(IMAGE_EXTENSIONS))
            for f in files[:self.limit_per_class] if self.limit_per_class else files:
                yield {"id": f"{d}/{f}", "image": os.path.join(self.source, d, f), "label": self.classes[target],
                       "target": target}


class ListDataset(Dataset):
    """The plain form scripts already use: a list of dicts ``{"image": path, "caption": str or
    "captions": [...], "question": str, "answer": str or "answers": [...], "label": str}`` (or a
    .json list / .jsonl file of them; relative image paths resolve against ``image_root``, default
    the file's folder). Classes of a labelled set are its labels in first-seen order."""

    def __init__(self, items, image_root=None, name=None, limit=None):
        source = items if isinstance(items, (str, os.PathLike)) else "<list>"
        if isinstance(items, (str, os.PathLike)):
            path = os.fspath(items)
            if image_root is None:
                image_root = os.path.dirname(os.path.abspath(path))
            if path.lower().endswith(".jsonl"):
                try:
                    with open(path, encoding="utf-8") as f:
                        items = [json.loads(line) for line in f if line.strip()]
                except FileNotFoundError:
                    raise FileNotFoundError(f"dataset: {path}: no such file") from None
                except ValueError as e:
                    raise FormatError(f"dataset: {path}: bad JSON line ({e})") from None
            else:
                items = _read_json(path, "dataset")
                if isinstance(items, dict):
                    items = items.get("data", items.get("items"))
        if not isinstance(items, (list, tuple)):
            raise FormatError(f"dataset {source}: expected a list of dicts")
        super().__init__(name or (os.path.basename(source) if source != "<list>" else "list"), source)
        self.image_root = image_root
        self._raw = list(items)[:limit] if limit else list(items)
        labels = [r.get("label") for r in self._raw if isinstance(r, dict) and isinstance(r.get("label"), str)]
        self.classes = list(dict.fromkeys(labels)) or None
        if self.classes:
            self.task = "classification"
        elif any(isinstance(r, dict) and "question" in r for r in self._raw):
            self.task = "vqa"
        else:
            self.task = "captioning"

    def _items(self):
        for n, r in enumerate(self._raw):
            if not isinstance(r, dict) or r.get("image") is None:
                yield {"id": n, "image": None, "problem": "record without an 'image'"}
                continue
            img = r["image"]
            if isinstance(img, (str, os.PathLike)) and self.image_root and not os.path.isabs(img):
                img = os.path.join(self.image_root, img)
            item = {"id": r.get("id", r.get("question_id", n)), "image": img}
            caps = r.get("captions", r.get("caption"))
            if caps is not None:
                caps = [caps] if isinstance(caps, str) else caps
                if not isinstance(caps, list) or not caps or not all(isinstance(c, str) for c in caps):
                    yield {"id": item["id"], "image": img, "problem": "'caption(s)' must be a string or list of strings"}
                    continue
                item["captions"] = caps
            if "question" in r:
                if not isinstance(r["question"], str) or not r["question"].strip():
                    yield {"id": item["id"], "image": img, "problem": "'question' must be a non-empty string"}
                    continue
                item["question"] = r["question"]
                item["question_id"] = r.get("question_id", item["id"])
                ans = r.get("answers", r.get("answer"))
                if ans is not None:
                    try:
                        item["answers"] = _vqa_answers(ans)
                    except ValueError as e:
                        yield {"id": item["id"], "image": img, "problem": f"answers: {e}"}
                        continue
                    item["answer_type"] = r.get("answer_type", "other")
                    item["question_type"] = r.get("question_type", "none of the above")
            if isinstance(r.get("label"), str):
                item["label"] = r["label"]
                item["target"] = self.classes.index(r["label"])
            yield item


def load_dataset(path, images=None, split="test", annotations=None, limit=None):
    """A dataset from a path, by its shape: a folder of class folders -> ImageFolder; a COCO
    captions JSON -> CocoCaptions; a Karpathy JSON -> KarpathySplit; a VQAv2 questions JSON ->
    VQAv2 (``annotations=`` or the matching ``*annotations*.json`` beside it); a .csv ->
    Flickr30k; any other .json/.jsonl list of dicts -> ListDataset. images: the image folder
    (default: beside the file)."""
    path = os.fspath(path)
    if os.path.isdir(path):
        return ImageFolder(path, limit_per_class=limit)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"dataset: {path}: no such file or directory")
    images = images if images is not None else os.path.dirname(os.path.abspath(path))
    low = path.lower()
    if low.endswith(".csv"):
        return Flickr30k(path, images, limit=limit)
    if low.endswith(".jsonl"):
        return ListDataset(path, image_root=images, limit=limit)
    data = _read_json(path, "dataset")
    if isinstance(data, dict):
        if "questions" in data:
            if annotations is None:
                d = os.path.dirname(os.path.abspath(path))
                cands = sorted(f for f in os.listdir(d) if "annotations" in f and f.endswith(".json"))
                annotations = os.path.join(d, cands[0]) if len(cands) == 1 else None
            return VQAv2(path, images, annotations=annotations, limit=limit)
        ims = data.get("images")
        if isinstance(ims, list) and ims and isinstance(ims[0], dict) and "sentences" in ims[0]:
            return KarpathySplit(path, images, split=split, limit=limit)
        if isinstance(ims, list) and "annotations" in data:
            return CocoCaptions(path, images, limit=limit)
    if isinstance(data, list) and data and isinstance(data[0], dict) and any(k in data[0] for k in _IMAGE_COLUMNS[1:]) \
            and not any(k in data[0] for k in ("image", "question", "label")):
        return Flickr30k(path, images, limit=limit)
    return ListDataset(path, image_root=images, limit=limit)
