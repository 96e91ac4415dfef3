"""A tokenizer for the tiny BLIP-2 OPT fixture checkpoint (which ships none), so caption() and
ask() can be tested end to end with text: a byte-level BPE tokenizer.json trained with HF
`tokenizers` on a small corpus, laid out like OPT's (<s> 0, <pad> 1, </s> 2, <unk> 3; "</s>"
prepended as BOS by the post-processor) and sized so that "<image>" lands exactly on the
fixture's image_token_index (299).

    python tools/make_blip2_tokenizers.py     # writes tests/data/blip2_tokenizers/tiny_opt/
"""
import json
import os

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "data", "blip2_tokenizers", "tiny_opt")
CORPUS = [
    "Question: what is in the picture? Answer: a cat sitting on a sofa.",
    "a photo of a cat. a close up of a tabby cat. Question: what colour is it? Answer: brown",
] * 20
IMAGE_ID = 299

tok = Tokenizer(models.BPE())
tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
tok.decoder = decoders.ByteLevel()
trainer = trainers.BpeTrainer(vocab_size=IMAGE_ID, special_tokens=["<s>", "<pad>", "</s>", "<unk>"],
                              initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
tok.train_from_iterator(CORPUS, trainer)
assert tok.get_vocab_size() == IMAGE_ID, tok.get_vocab_size()
tok.add_special_tokens(["<image>"])
assert tok.token_to_id("<image>") == IMAGE_ID
tok.post_processor = processors.TemplateProcessing(single="</s> $A", pair="</s> $A </s> $B",
                                                   special_tokens=[("</s>", 2)])
os.makedirs(OUT, exist_ok=True)
tok.save(os.path.join(OUT, "tokenizer.json"))
with open(os.path.join(OUT, "tokenizer_config.json"), "w") as f:
    json.dump({"tokenizer_class": "GPT2Tokenizer", "bos_token": "</s>", "eos_token": "</s>", "pad_token": "<pad>",
               "unk_token": "<unk>", "add_bos_token": True, "model_max_length": 64}, f, indent=1)
print("wrote", OUT)
