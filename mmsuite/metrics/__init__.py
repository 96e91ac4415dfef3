"""Evaluation metrics, each equal to its reference tool: CLIP_benchmark retrieval recall@k and
zero-shot classification, coco-caption BLEU/ROUGE-L/CIDEr-D (with a native PTB tokenizer),
sacrebleu corpus BLEU, rouge_score, VQAv2 accuracy, MMMU accuracy, ANLS and WER.
Pure Python + NumPy. CLI: python -m mmsuite.metrics DIR [--json OUT]."""
from .caption import bleu, cider_d, coco_caption_scores, rouge_l
from .files import evaluate_dir, find_benchmark_files
from .mmmu import mmmu_accuracy, parse_multi_choice_response, parse_open_response
from .porter import porter_stem
from .ptb import ptb_tokenize, ptb_tokenize_lines
from .retrieval import retrieval_ranks, retrieval_recall_at_k, zeroshot_classification
from .rouge import rouge_score, rouge_score_multi
from .sacre import sacrebleu_corpus_bleu, sacrebleu_sentence_bleu, tokenize_13a
from .text import anls, levenshtein, wer
from .vqa import vqa_accuracy, vqa_normalize_answer

__all__ = ["retrieval_recall_at_k", "retrieval_ranks", "zeroshot_classification", "coco_caption_scores", "ptb_tokenize",
           "ptb_tokenize_lines", "bleu", "rouge_l", "cider_d", "sacrebleu_corpus_bleu", "sacrebleu_sentence_bleu",
           "tokenize_13a", "rouge_score", "rouge_score_multi", "porter_stem", "vqa_accuracy", "vqa_normalize_answer",
           "mmmu_accuracy", "parse_multi_choice_response", "parse_open_response", "anls", "wer", "levenshtein",
           "evaluate_dir", "find_benchmark_files"]
