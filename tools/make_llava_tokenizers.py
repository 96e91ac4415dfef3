"""Tokenizers for the LLaVA fixture checkpoints (which ship none), so ask()/chat() can be tested
end to end: byte-level BPE tokenizer.json files trained with HF `tokenizers` on a small English
corpus, sized so that "<image>" lands exactly on each fixture's image_token_index.

    python tools/make_llava_tokenizers.py      # writes tests/data/llava_tokenizers/{llava15,llava_next}/
"""
import json
import os

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "data", "llava_tokenizers")
CORPUS = [
    "USER: What is in the picture? ASSISTANT: An astronaut in a white suit.",
    "[INST] Describe the image. [/INST] A person smiling in front of a flag.",
    "What colour is the sky? The sky is blue. How many people are there? One person.",
    "Caf\u00e9 cr\u00e8me br\u00fbl\u00e9e, na\u00efve fa\u00e7ade \u2014 \u201cquotes\u201d and \u00e9t\u00e9 \u2603 \U0001f600",
] * 20

CASES = {"llava15": (396, "</s>"), "llava_next": (380, "</s>")}

for name, (image_id, eos) in CASES.items():
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=image_id, special_tokens=["<unk>", "<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(CORPUS, trainer)
    assert tok.get_vocab_size() == image_id, tok.get_vocab_size()
    tok.add_special_tokens(["<image>"])
    assert tok.token_to_id("<image>") == image_id
    from tokenizers.processors import TemplateProcessing
    tok.post_processor = TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    tok.save(os.path.join(d, "tokenizer.json"))
    with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
        json.dump({"bos_token": "<s>", "eos_token": eos, "unk_token": "<unk>", "add_bos_token": True,
                   "tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": 256}, f, indent=1)
    print(name, tok.get_vocab_size(), tok.encode("USER: <image>\nWhat? ASSISTANT:").ids)
