"""Dataset loaders (mmsuite.datasets) on small datasets built here: every format, detection by
load_dataset, bad / missing files reported per item, clear errors for bad annotation files."""
import csv
import json
import os

import numpy as np
import pytest
from PIL import Image

from mmsuite import FormatError
from mmsuite.datasets import (CocoCaptions, Flickr30k, ImageFolder, KarpathySplit, ListDataset, VQAv2,
                              load_dataset)


def _img(path, seed):
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)).save(path)
    return path


@pytest.fixture
def images(tmp_path):
    d = tmp_path / "images"
    d.mkdir()
    for i in range(4):
        _img(str(d / f"im{i}.png"), i)
    _img(str(d / "im4.jpg"), 4)
    return d


def test_coco_captions(images, tmp_path):
    ann = {"images": [{"id": 1, "file_name": "im0.png"}, {"id": 2, "file_name": "im1.png"},
                      {"id": 3, "file_name": "gone.png"}, {"id": 4, "file_name": "im2.png"}],
           "annotations": [{"image_id": 1, "caption": "a"}, {"image_id": 1, "caption": "b"},
                           {"image_id": 2, "caption": "c"}, {"image_id": 3, "caption": "d"}]}
    p = tmp_path / "captions_val2014.json"
    p.write_text(json.dumps(ann))
    ds = load_dataset(str(p), images=str(images))
    assert isinstance(ds, CocoCaptions) and len(ds) == 4
    items = list(ds)
    assert [(it["id"], it["captions"]) for it in items] == [(1, ["a", "b"]), (2, ["c"])]
    assert items[0]["image"] == os.path.join(str(images), "im0.png")
    assert ds.skipped == 2
    assert {p["item"]: p["problem"] for p in ds.problems} == {3: "image file not found",
                                                              4: "image has no caption annotation"}
    list(ds)  # a second pass does not count the problems twice
    assert ds.skipped == 2


def test_karpathy_split(images, tmp_path):
    data = {"images": [
        {"filepath": "", "filename": "im0.png", "split": "test", "cocoid": 10, "sentences": [{"raw": "x"}, {"raw": "y"}]},
        {"filepath": "", "filename": "im1.png", "split": "val", "cocoid": 11, "sentences": [{"raw": "z"}]},
        {"filepath": "", "filename": "im2.png", "split": "restval", "cocoid": 12, "sentences": [{"raw": "w"}]},
        {"filepath": "", "filename": "im3.png", "split": "train", "cocoid": 13, "sentences": []}]}
    p = tmp_path / "dataset_coco.json"
    p.write_text(json.dumps(data))
    ds = load_dataset(str(p), images=str(images))
    assert isinstance(ds, KarpathySplit)
    assert [(it["id"], it["captions"]) for it in ds] == [(10, ["x", "y"])]
    train = KarpathySplit(str(p), str(images), split="train")
    assert [it["id"] for it in train] == [12] and train.skipped == 1  # 13 has no sentences


def test_flickr_csv_formats(images, tmp_path):
    plain = tmp_path / "captions.csv"
    with open(plain, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image", "caption"])
        w.writerows([["im0.png", "one, with a comma"], ["im0.png", "two"], ["im1.png", "three"], ["nope.png", "x"],
                     ["im2.png", ""]])
    ds = load_dataset(str(plain), images=str(images))
    assert isinstance(ds, Flickr30k)
    assert [(os.path.basename(it["image"]), it["captions"]) for it in ds] == [
        ("im0.png", ["one, with a comma", "two"]), ("im1.png", ["three"])]
    assert sorted(p["problem"] for p in ds.problems) == ["image file not found", "row without image or caption"]
    piped = tmp_path / "results.csv"
    piped.write_text("image_name| comment_number| comment\nim3.png| 0| A dog .\nim3.png| 1| Two dogs .\n")
    assert [it["captions"] for it in load_dataset(str(piped), images=str(images))] == [["A dog .", "Two dogs ."]]
    hf = tmp_path / "flickr_annotations_30k.csv"
    with open(hf, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["raw", "sentids", "split", "filename", "img_id"])
        w.writerow([json.dumps(["c1", "c2"]), "[0, 1]", "test", "im0.png", "0"])
        w.writerow([json.dumps(["c3"]), "[2]", "train", "im1.png", "1"])
    assert [it["captions"] for it in Flickr30k(str(hf), str(images), split="test")] == [["c1", "c2"]]
    js = tmp_path / "flickr.json"
    js.write_text(json.dumps([{"filename": "im4.jpg", "sentences": ["s1", "s2"]}]))
    ds = load_dataset(str(js), images=str(images))
    assert isinstance(ds, Flickr30k) and [it["captions"] for it in ds] == [["s1", "s2"]]


def test_vqav2(images, tmp_path):
    for name in ("COCO_val2014_000000000001.jpg", "000000000002.jpg"):
        _img(str(images / name), 7)
    q = {"data_subtype": "val2014", "questions": [{"image_id": 1, "question": "What?", "question_id": 10},
                                                  {"image_id": 2, "question": "Who?", "question_id": 20},
                                                  {"image_id": 3, "question": "Where?", "question_id": 30},
                                                  {"image_id": 1, "question": "Why?", "question_id": 40}]}
    a = {"annotations": [{"question_id": qid, "answer_type": "other", "question_type": "what",
                          "answers": [{"answer": "x", "answer_id": i + 1} for i in range(10)]} for qid in (10, 20, 30)]}
    (tmp_path / "v2_OpenEnded_mscoco_val2014_questions.json").write_text(json.dumps(q))
    (tmp_path / "v2_mscoco_val2014_annotations.json").write_text(json.dumps(a))
    ds = load_dataset(str(tmp_path / "v2_OpenEnded_mscoco_val2014_questions.json"), images=str(images))
    assert isinstance(ds, VQAv2)
    items = list(ds)
    assert [it["question_id"] for it in items] == [10, 20]
    assert os.path.basename(items[1]["image"]) == "000000000002.jpg"  # 2017-style name found
    assert len(items[0]["answers"]) == 10 and items[0]["answer_type"] == "other"
    assert {p["item"]: p["problem"] for p in ds.problems} == {30: "image file not found", 40: "question has no annotation"}
    no_ann = VQAv2(str(tmp_path / "v2_OpenEnded_mscoco_val2014_questions.json"), str(images))
    assert [it["question_id"] for it in no_ann] == [10, 20, 40] and "answers" not in next(iter(no_ann))


def test_image_folder(tmp_path):
    for cls, n in (("golden_retriever", 2), ("tabby_cat", 3)):
        (tmp_path / "set" / cls).mkdir(parents=True)
        for i in range(n):
            _img(str(tmp_path / "set" / cls / f"{i}.png"), i)
    (tmp_path / "set" / "tabby_cat" / "notes.txt").write_text("not an image")
    ds = load_dataset(str(tmp_path / "set"))
    assert isinstance(ds, ImageFolder) and ds.classes == ["golden retriever", "tabby cat"]
    items = list(ds)
    assert [(it["label"], it["target"]) for it in items] == [("golden retriever", 0)] * 2 + [("tabby cat", 1)] * 3
    assert ImageFolder(str(tmp_path / "set"), labels=["dog", "cat"]).classes == ["dog", "cat"]
    with pytest.raises(ValueError, match="labels: 1 given for 2 class folders"):
        ImageFolder(str(tmp_path / "set"), labels=["dog"])
    with pytest.raises(FileNotFoundError, match="nowhere"):
        ImageFolder(str(tmp_path / "nowhere"))


def test_list_dataset_forms(images, tmp_path):
    recs = [{"image": "im0.png", "caption": "a cat", "question": "What?", "answer": "cat"},
            {"image": "im1.png", "captions": ["x", "y"], "question": "Who?", "answers": ["a", "b", "a"]},
            {"image": "im2.png", "question": ""},
            {"caption": "no image"},
            "not a dict"]
    (images / "data.json").write_text(json.dumps(recs))
    with open(images / "data.jsonl", "w") as f:
        for r in recs:
            f.write(json.dumps(r) + "\n")
    for name in ("data.json", "data.jsonl"):
        ds = load_dataset(str(images / name))
        assert isinstance(ds, ListDataset) and ds.task == "vqa"
        items = list(ds)
        assert [it["id"] for it in items] == [0, 1]
        assert items[0]["captions"] == ["a cat"] and items[1]["captions"] == ["x", "y"]
        assert [a["answer"] for a in items[0]["answers"]] == ["cat"] * 10  # one answer = ten annotators
        assert [a["answer_id"] for a in items[0]["answers"]] == list(range(1, 11))
        assert [a["answer"] for a in items[1]["answers"]] == ["a", "b", "a"]
        assert ds.skipped == 3
    labelled = ListDataset([{"image": str(images / "im0.png"), "label": "cat"},
                            {"image": str(images / "im1.png"), "label": "dog"},
                            {"image": str(images / "im2.png"), "label": "cat"}])
    assert labelled.task == "classification" and labelled.classes == ["cat", "dog"]
    assert [it["target"] for it in labelled] == [0, 1, 0]


def test_bad_annotation_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.json"):
        load_dataset(str(tmp_path / "missing.json"))
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(FormatError, match="bad.json: not valid JSON"):
        load_dataset(str(bad))
    coco = tmp_path / "c.json"
    coco.write_text(json.dumps({"images": "nope", "annotations": []}))
    with pytest.raises(FormatError, match="needs 'images' and 'annotations' lists"):
        CocoCaptions(str(coco), str(tmp_path))
    csvf = tmp_path / "x.csv"
    csvf.write_text("foo,bar\n1,2\n")
    with pytest.raises(FormatError, match="header needs one of"):
        load_dataset(str(csvf))
    with pytest.raises(FormatError, match="expected a list of dicts"):
        ListDataset({"a": 1})
