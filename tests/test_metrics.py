"""mmsuite.metrics against the reference tools' numbers (tests/data/metrics, copied from
shared/metrics): every folder goes through the CLI and every number is compared with expected.json
(rel. tolerance 1e-9; float32 recalls exactly), plus per-item values, the PTB tokenizer's
documented behaviours, ANLS / WER on hand-computed cases and the CLI's error messages."""
import json
import math
import os
import shutil

import numpy as np
import pytest

from conftest import DATA
from mmsuite import metrics as M
from mmsuite.metrics.__main__ import main

JIWER_WER = 0.6  # recorded with jiwer 4.0.0 (a test-time cross-check; jiwer is not a dependency)

GOLD = os.path.join(DATA, "metrics")
REL = 1e-9


def close(a, b, rel=REL):
    if isinstance(b, float) and math.isnan(b):
        return isinstance(a, float) and math.isnan(a)
    return math.isclose(a, b, rel_tol=rel, abs_tol=0.0)


def expected(folder):
    with open(os.path.join(GOLD, folder, "expected.json"), encoding="utf-8") as f:
        return json.load(f)


_RUNS = {}


def run_cli(folder, tmp_path_factory):
    """The CLI's JSON for one golden folder (computed once per folder)."""
    if folder not in _RUNS:
        out = tmp_path_factory.mktemp("metrics") / (folder + ".json")
        assert main([os.path.join(GOLD, folder), "--json", str(out), "--per-item"]) == 0
        with open(out, encoding="utf-8") as f:
            _RUNS[folder] = json.load(f)
    return _RUNS[folder]


# ---------------------------------------------------------------------------------------------
# Captioning: coco-caption, sacrebleu, rouge_score
# ---------------------------------------------------------------------------------------------

def test_coco_caption_corpus_and_per_image(tmp_path_factory):
    got = run_cli("captioning", tmp_path_factory)["captioning"]
    exp = expected("captioning")["coco_caption"]
    assert got["num_images"] == exp["num_images"]
    assert set(got["coco_caption"]) == set(exp["metrics"])
    for k, v in exp["metrics"].items():
        assert close(got["coco_caption"][k], v), k
    per = got["coco_caption_per_image"]
    assert [p["image_id"] for p in per] == [p["image_id"] for p in exp["per_image"]]
    for g, e in zip(per, exp["per_image"]):
        assert g["prediction_ptb"] == e["prediction_ptb"], e["tag"]
        assert g["references_ptb"] == e["references_ptb"], e["tag"]
        for k in ("Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "ROUGE_L", "CIDEr"):
            assert close(g[k], e[k]), (e["image_id"], e["tag"], k)


def test_coco_scorers_on_reference_tokens():
    """The scorers alone, fed the tool's own PTB output (tokenize=False)."""
    exp = expected("captioning")["coco_caption"]
    refs = {p["image_id"]: p["references_ptb"] for p in exp["per_image"]}
    cands = {p["image_id"]: p["prediction_ptb"] for p in exp["per_image"]}
    got = M.coco_caption_scores(refs, cands, tokenize=False)
    for k, v in exp["metrics"].items():
        assert close(got["metrics"][k], v), k
    # CIDEr-D depends on the evaluated set: a subset scores differently (documented behaviour)
    sub = list(refs)[:10]
    part = M.coco_caption_scores({k: refs[k] for k in sub}, {k: cands[k] for k in sub}, tokenize=False)
    assert not close(part["per_image"][0]["CIDEr"], exp["per_image"][0]["CIDEr"])


def test_sacrebleu(tmp_path_factory):
    got = run_cli("captioning", tmp_path_factory)["captioning"]["sacrebleu"]
    exp = expected("captioning")["sacrebleu"]
    for block in ("corpus_bleu", "corpus_bleu_lowercase"):
        for k in ("counts", "totals", "sys_len", "ref_len"):
            assert got[block][k] == exp[block][k], (block, k)
        for k in ("score", "bp"):
            assert close(got[block][k], exp[block][k]), (block, k)
        assert all(close(a, b) for a, b in zip(got[block]["precisions"], exp[block]["precisions"]))
    assert exp["signature_corpus"].startswith(got["corpus_bleu"]["signature"] + "|version:")
    assert exp["corpus_bleu_lowercase"]["signature"].startswith(got["corpus_bleu_lowercase"]["signature"])
    assert close(got["sentence_bleu_mean"], exp["sentence_bleu_mean"])
    for g, e in zip(got["sentence_bleu"], exp["sentence_bleu"]):
        assert g["image_id"] == e["image_id"] and g["hypothesis_13a"] == e["hypothesis_13a"]
        for k in ("counts", "totals", "sys_len", "ref_len"):
            assert g[k] == e[k], (e["image_id"], k)
        assert close(g["score"], e["score"]) and close(g["bp"], e["bp"]), e["image_id"]
        assert all(close(a, b) for a, b in zip(g["precisions"], e["precisions"]))


@pytest.mark.parametrize("setting", ["use_stemmer_false", "use_stemmer_true"])
def test_rouge_score(tmp_path_factory, setting):
    got = run_cli("captioning", tmp_path_factory)["captioning"]["rouge_score"][setting]
    exp = expected("captioning")["rouge_score"][setting]
    for agg in ("mean_fmeasure_max_over_refs", "mean_fmeasure_first_ref"):
        for t, v in exp[agg].items():
            assert close(got[agg][t], v), (agg, t)
    for g, e in zip(got["per_image"], exp["per_image"]):
        assert g["image_id"] == e["image_id"]
        for t, s in e["max_over_refs"].items():
            assert g["max_over_refs"][t]["best_ref"] == s["best_ref"], (e["image_id"], t)
            for k in ("precision", "recall", "fmeasure"):
                assert close(g["max_over_refs"][t][k], s[k]), (e["image_id"], t, k)
        for t, v in e["first_ref_fmeasure"].items():
            assert close(g["first_ref_fmeasure"][t], v), (e["image_id"], t)


def test_rouge_tokenizer_and_stemmer():
    assert M.rouge_score("x", "x")["rougeL"]["fmeasure"] == 1.0
    from mmsuite.metrics.rouge import rouge_tokenize
    assert rouge_tokenize("A café in São Paulo!") == ["a", "caf", "in", "s", "o", "paulo"]
    assert rouge_tokenize("Umbrellas walks running", use_stemmer=True) == ["umbrella", "walk", "run"]
    for word, stem in [("ponies", "poni"), ("ties", "tie"), ("dying", "die"), ("happy", "happi"),
                       ("relational", "relat"), ("generalization", "gener"), ("hopping", "hop"), ("sky", "sky")]:
        assert M.porter_stem(word) == stem, word


# ---------------------------------------------------------------------------------------------
# The PTB tokenizer's documented behaviours (README of the golden files, section 1.1)
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text,tokens", [
    ("A woman (in white) hitting a ball.", "a woman -lrb- in white -rrb- hitting a ball"),
    ("Wow!! Really?! :) yes", "wow !! really ?! :-rrb- yes"),
    ("It's a dog that can't swim.", "it 's a dog that ca n't swim"),
    ("A skater in mid-air near a fire-hydrant.", "a skater in mid-air near a fire-hydrant"),
    ("A cake with candles\u2014ready!", "a cake with candles ready"),
    ("A \u201cSTOP\u201d sign and 'quotes'", "a stop sign and quotes"),
    ("Bake at 350\u00b0 for 1\u00bd hours", "bake at 350 \u00b0 for 1 1/2 hours"),
    ("A cat \U0001F600 sleeping", "a cat sleeping"),
    ("two\u00a0dogs\u200bplaying", "two dogs playing"),
    ("Caf\u00e9 in S\u00e3o Paulo with \u5bff\u53f8", "caf\u00e9 in s\u00e3o paulo with \u5bff\u53f8"),
    ("[box] {brace}", "-lsb- box -rsb- -lcb- brace -rcb-"),
    ("I cannot wait...", "i can not wait"),
    ("Dr. Smith and Mr. Jones, etc.", "dr. smith and mr. jones etc."),
    ("It costs $5.50 or \u00a33", "it costs $ 5.50 or # 3"),
    ("", ""), ("   \t ", ""), (".", ""), ("!?", "!?"), ("- -- ...", ""),
])
def test_ptb_tokenizer(text, tokens):
    assert M.ptb_tokenize(text) == tokens


def test_ptb_tokenizer_lines_stay_aligned():
    lines = ["first line\r\nstill first", "second\u2028line", "", "fourth\u0085one", "last"]
    out = M.ptb_tokenize(lines)
    assert out == ["first line still first", "second line", "", "fourth one", "last"]
    assert M.ptb_tokenize("He's here.", coco=False) == "he 's here ."


# ---------------------------------------------------------------------------------------------
# VQA, MMMU, retrieval, zero-shot classification
# ---------------------------------------------------------------------------------------------

def test_vqa(tmp_path_factory):
    got = run_cli("vqa", tmp_path_factory)["vqa"]
    exp = expected("vqa")
    assert got["overall"] == exp["official_rounded"]["overall"]
    assert got["perAnswerType"] == exp["official_rounded"]["perAnswerType"]
    assert got["perQuestionType"] == exp["official_rounded"]["perQuestionType"]
    assert close(got["unrounded"]["overall"], exp["unrounded"]["overall"])
    for group in ("perAnswerType", "perQuestionType"):
        assert set(got["unrounded"][group]) == set(exp["unrounded"][group])
        for k, v in exp["unrounded"][group].items():
            assert close(got["unrounded"][group][k], v), (group, k)
    assert len(got["per_question"]) == exp["num_questions"]
    for g, e in zip(got["per_question"], exp["per_question"]):
        for k in ("question_id", "answer_type", "question_type", "prediction", "normalization_applied",
                  "prediction_compared", "gt_answers_compared", "accuracy_official_rounded"):
            assert g[k] == e[k], (e["tag"], k)
        assert close(g["accuracy"], e["accuracy"]) if e["accuracy"] else g["accuracy"] == 0, e["tag"]


def test_vqa_normalization():
    assert M.vqa_normalize_answer("The two (2) dogs!") == "2 2 dogs"
    assert M.vqa_normalize_answer("a.m.") == "am" and M.vqa_normalize_answer("2.5") == "2.5"
    assert M.vqa_normalize_answer("None") == "0" and M.vqa_normalize_answer("dont know") == "don't know"


def test_mmmu(tmp_path_factory):
    got = run_cli("mmmu", tmp_path_factory)["mmmu"]
    exp = expected("mmmu")
    assert got["per_category"].keys() == exp["per_category"].keys()
    assert got["per_domain"].keys() == exp["per_domain"].keys()
    for name, e in [("overall", exp["overall"])] + [(k, v) for k, v in exp["per_category"].items()]:
        g = got["overall"] if name == "overall" else got["per_category"][name]
        assert g["num"] == e["num"] and g["acc_rounded_3"] == e["acc_rounded_3"] and close(g["acc"], e["acc"]), name
    for name, e in exp["per_domain"].items():
        g = got["per_domain"][name]
        assert g["num"] == e["num"] and g["acc_rounded_3"] == e["acc_rounded_3"] and close(g["acc"], e["acc"]), name
    assert got["num_random_fallback"] == exp["num_random_fallback"]
    assert got["deterministic_subset"]["num"] == exp["deterministic_subset"]["num"]
    assert got["deterministic_subset"]["num_correct"] == exp["deterministic_subset"]["num_correct"]
    assert close(got["deterministic_subset"]["acc"], exp["deterministic_subset"]["acc"])
    for g, e in zip(got["per_item"], exp["per_item"]):
        for k in ("id", "question_type", "answer", "response", "random_fallback", "judge"):
            assert g[k] == e[k], (e["tag"], k)
        if e["question_type"] == "open":
            assert sorted(map(repr, g["parsed_pred"])) == sorted(map(repr, e["parsed_pred"])), e["tag"]
        else:
            assert g["parsed_pred"] == e["parsed_pred"], e["tag"]


def test_mmmu_parsing_rules():
    choices, idx = ["A", "B", "C", "D"], {"A": "10", "B": "100", "C": "1000", "D": "5"}
    assert M.parse_multi_choice_response("The answer is (C) not (D).", choices, idx) == ("D", False)
    assert M.parse_multi_choice_response("it is 100 or 1000 and some more words", choices, idx) == ("A", False)
    assert M.parse_open_response("Therefore the rate is 24 percent") in ([24.0, "24 percent"], ["24 percent", 24.0])


def test_retrieval(tmp_path_factory):
    got = run_cli("retrieval", tmp_path_factory)["retrieval"]
    exp = expected("retrieval")
    for k, v in exp["clip_benchmark"].items():
        assert got[k] == v, k  # float32 mean, bit for bit
        assert got["hit_counts"][k] == exp["clip_benchmark_hit_counts"][k], k
        assert got["per_query_hit"][k] == exp["clip_benchmark_per_query_hit"][k], k


@pytest.mark.parametrize("rule,key", [("optimistic", "optimistic"), ("pessimistic", "pessimistic"),
                                      ("stable", "stable_lower_index_first")])
def test_retrieval_tie_rules(rule, key):
    with open(os.path.join(GOLD, "retrieval", "retrieval_scores.json"), encoding="utf-8") as f:
        data = json.load(f)
    got = M.retrieval_recall_at_k(data["scores"], data["text_image_index"], tie_rule=rule)
    ties = expected("retrieval")["tie_rules"]
    for k in ("1", "5", "10"):
        assert got["hit_counts"]["image_retrieval_recall@" + k] / 200 == ties["image_retrieval_text_to_image"][k][key]
        assert got["hit_counts"]["text_retrieval_recall@" + k] / 40 == ties["text_retrieval_image_to_text"][k][key]


def test_retrieval_ranks():
    with open(os.path.join(GOLD, "retrieval", "retrieval_scores.json"), encoding="utf-8") as f:
        data = json.load(f)
    got = M.retrieval_ranks(data["scores"], data["text_image_index"])
    ties = expected("retrieval")["tie_rules"]
    for mine, theirs in (("text_to_image", "image_retrieval_text_to_image"),
                         ("image_to_text", "text_retrieval_image_to_text")):
        for key in ("rank_optimistic", "rank_pessimistic"):
            assert got[mine][key] == ties[theirs][key], (mine, key)
        for k in ("1", "5", "10"):
            decide = [q for q, (o, p) in enumerate(zip(got[mine]["rank_optimistic"], got[mine]["rank_pessimistic"]))
                      if o <= int(k) < p]
            assert decide == ties[theirs][k]["rows_where_ties_decide"], (mine, k)


def test_topk_emulation_matches_torch():
    """torch.topk's choice among tied scores, recorded from torch on CPU (tests/data/metrics/topk_torch.json)."""
    with open(os.path.join(os.path.dirname(__file__), "data", "metrics", "topk_torch.json")) as f:
        cases = json.load(f)["cases"]
    assert len(cases) == 300
    for c in cases:
        row = np.array(c["row"], dtype=np.float32)
        assert sorted(M.retrieval.topk_indices_torch(row, c["k"])) == c["torch_topk"], (len(row), c["k"])


def test_zeroshot_classification(tmp_path_factory):
    got = run_cli("zeroshot_classification", tmp_path_factory)["zeroshot_classification"]
    exp = expected("zeroshot_classification")
    for k in ("acc1", "acc5", "mean_per_class_recall"):
        assert close(got[k], exp[k]), k
    assert got["pred_top1"] == exp["pred_top1"]
    small = M.zeroshot_classification([[0.1, 0.9], [0.8, 0.2]], [1, 1])
    assert small["acc1"] == 0.5 and math.isnan(small["acc5"]) and small["mean_per_class_recall"] == 0.5


# ---------------------------------------------------------------------------------------------
# ANLS and WER (no golden files: hand-computed cases)
# ---------------------------------------------------------------------------------------------

def test_anls():
    assert M.anls(["Hello  World "], [["hello world"]])["anls"] == 1.0
    assert M.anls("abcd", ["abce", "zzzz"])["anls"] == 0.75  # NL = 1/4, best over gold answers
    assert M.anls("ab", ["cd"])["anls"] == 0.0  # NL = 1 >= 0.5
    assert M.anls("abcd", ["abef"])["anls"] == 0.0  # NL = 0.5 exactly: not < 0.5
    assert M.anls("abcdefghij", ["abcdefgxyz"])["per_question"] == [pytest.approx(0.7)]
    assert M.anls("", [""])["anls"] == 1.0
    assert M.anls(["ABC"], [["abc"]], normalize=False)["anls"] == 0.0
    r = M.anls(["kitten", "x"], [["sitting"], ["x", "y"]])
    assert r["per_question"] == [pytest.approx(1 - 3 / 7), 1.0] and r["anls"] == pytest.approx((1 - 3 / 7 + 1) / 2)


def test_wer():
    assert M.wer("the cat sat", "the cat sat") == 0.0
    assert M.wer("the cat sat on the mat", "the cat sit on mat") == pytest.approx(2 / 6)
    assert M.wer(["a b", "c d e"], ["a x b", "c e"], return_counts=True) == {"wer": 0.4, "errors": 2,
                                                                             "reference_words": 5}
    assert M.wer("Hello, world!", "hello world") == 1.0
    assert M.wer("Hello, world!", "hello world", normalize=True) == 0.0
    with pytest.raises(ValueError, match="no word"):
        M.wer([""], ["a"])


def test_wer_matches_jiwer():
    refs = ["the quick brown fox", "jumps over the lazy dog", "a b c d e f"]
    hyps = ["the quick brown box", "jumps the lazy dog dog", "f e d c b a"]
    assert M.wer(refs, hyps) == pytest.approx(JIWER_WER, rel=1e-12)  # jiwer.wer(refs, hyps)


# ---------------------------------------------------------------------------------------------
# CLI: output and error messages
# ---------------------------------------------------------------------------------------------

def _copy(folder, tmp_path, files):
    d = tmp_path / folder
    d.mkdir()
    for name in files:
        shutil.copy(os.path.join(GOLD, folder, name), d / name)
    return d


def _error(capsys, argv):
    assert main(argv) == 2
    return capsys.readouterr().err


def test_cli_prints_metrics(capsys):
    assert main([os.path.join(GOLD, "zeroshot_classification")]) == 0
    out = capsys.readouterr().out
    assert "acc1" in out and "mean_per_class_recall" in out and "logits.json" in out


def test_cli_missing_directory(capsys, tmp_path):
    assert "no such directory" in _error(capsys, [str(tmp_path / "nope")])
    assert "no benchmark file found" in _error(capsys, [str(tmp_path)])


def test_cli_missing_partner_file(capsys, tmp_path):
    d = _copy("captioning", tmp_path, ["captions_results.json"])
    err = _error(capsys, [str(d)])
    assert "captions_results.json" in err and "annotation" in err
    d = _copy("vqa", tmp_path, ["v2_mscoco_val2014_annotations.json", "v2_OpenEnded_mscoco_val2014_results.json"])
    err = _error(capsys, [str(d)])
    assert "questions" in err


def test_cli_corrupt_files(capsys, tmp_path):
    d = _copy("captioning", tmp_path, ["captions_annotations.json", "captions_results.json"])
    (d / "captions_results.json").write_text('[{"image_id": 1, "caption": "x"', encoding="utf-8")
    err = _error(capsys, [str(d)])
    assert "captions_results.json" in err and "invalid JSON" in err
    (d / "captions_results.json").write_text('{"something": "else"}', encoding="utf-8")
    err = _error(capsys, [str(d)])
    assert "captions_results.json" in err and "content does not fit" in err
    (d / "captions_results.json").write_text('[{"image_id": 999, "caption": "x"}]', encoding="utf-8")
    err = _error(capsys, [str(d)])
    assert "captions_results.json" in err and "999" in err
    (d / "captions_results.json").write_text('[{"image_id": 494082, "caption": "a"}, {"image_id": 494082, '
                                             '"caption": "b"}]', encoding="utf-8")
    assert "more than one result" in _error(capsys, [str(d)])


def test_cli_vqa_results_must_cover_questions(capsys, tmp_path):
    d = _copy("vqa", tmp_path, ["v2_OpenEnded_mscoco_val2014_questions.json", "v2_mscoco_val2014_annotations.json",
                                "v2_OpenEnded_mscoco_val2014_results.json"])
    res = json.loads((d / "v2_OpenEnded_mscoco_val2014_results.json").read_text(encoding="utf-8"))
    (d / "v2_OpenEnded_mscoco_val2014_results.json").write_text(json.dumps(res[1:]), encoding="utf-8")
    err = _error(capsys, [str(d)])
    assert "v2_OpenEnded_mscoco_val2014_results.json" in err and str(res[0]["question_id"]) in err


def test_cli_bad_matrix(capsys, tmp_path):
    d = tmp_path / "ret"
    d.mkdir()
    (d / "retrieval_scores.json").write_text(json.dumps({"scores": [[0.1, 0.2]], "text_image_index": [5]}))
    err = _error(capsys, [str(d)])
    assert "retrieval_scores.json" in err and "text_image_index" in err


@pytest.mark.parametrize("k", [1, 3, 5])
def test_torch_tie_rule_fast_path_equals_replay(k):
    """Queries whose hit cannot depend on tie order are decided from ranks; the result must equal
    replaying torch's selection on every row (scores with many ties and a few NaNs)."""
    from mmsuite.metrics.retrieval import _query_hits, topk_indices_torch
    rng = np.random.default_rng(k)
    scores = rng.integers(0, 4, (300, 40)).astype(np.float32)
    scores[rng.random(scores.shape) < 0.003] = np.nan
    positive = rng.random(scores.shape) < 0.08
    positive[np.arange(300), rng.integers(0, 40, 300)] = True
    fast = _query_hits(scores, positive, k, "torch")
    replay = [bool(positive[q][topk_indices_torch(scores[q], k)].any()) for q in range(300)]
    assert fast.tolist() == replay and 0 < fast.sum() < 300
