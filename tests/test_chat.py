"""Chat-template rendering (mmsuite.chat) against transformers' own renderer
(`transformers.utils.chat_template_utils.render_jinja_template`, the function behind
`apply_chat_template(tokenize=False)`), the prompts transformers' LLaVA processor tests expect, and
template loading from checkpoint files."""
import json
import os

import numpy as np
import pytest

from mmsuite.chat import (
    LLAVA15_CHAT_TEMPLATE, LLAVA_NEXT_MISTRAL_CHAT_TEMPLATE, LLAVA_NEXT_VICUNA_CHAT_TEMPLATE, TemplateError,
    default_chat_template, load_chat_template, render, special_tokens_map, text_to_parts)
from mmsuite.errors import ConfigError

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "conformance")
SPECIAL = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}


def _user(text, images=1, image_first=True):
    parts = [{"type": "image"}] * images
    t = [{"type": "text", "text": text}]
    return {"role": "user", "content": parts + t if image_first else t + parts}


def _assistant(text):
    return {"role": "assistant", "content": [{"type": "text", "text": text}]}


CONVERSATIONS = {
    "one_image": [_user("What is shown in this image?")],
    "two_images": [_user("Compare these.", images=2)],
    "text_first": [_user("Describe:", image_first=False)],
    "multi_turn": [_user("What is this?"), _assistant("A cat."), _user("What colour is it?", images=0)],
    "system": [{"role": "system", "content": [{"type": "text", "text": "You are terse."}]}, _user("Hi")],
    "unicode": [_user("Что это? 这是什么？ <b>&amp;</b> \"quoted\" 'single'")],
    "newlines": [_user("line one\nline two\n\n  indented")],
}

TEMPLATES = {"llava15": LLAVA15_CHAT_TEMPLATE, "mistral": LLAVA_NEXT_MISTRAL_CHAT_TEMPLATE,
             "vicuna": LLAVA_NEXT_VICUNA_CHAT_TEMPLATE}


def _hf_render(messages, template, **kwargs):
    import transformers.utils.chat_template_utils as cu  # test-only reference (tools/setup.sh)
    rendered, _ = cu.render_jinja_template([messages], chat_template=template, **kwargs)
    return rendered[0]


@pytest.mark.parametrize("gen", [True, False], ids=["gen_prompt", "no_gen_prompt"])
@pytest.mark.parametrize("conv", sorted(CONVERSATIONS))
@pytest.mark.parametrize("tmpl", sorted(TEMPLATES))
def test_default_templates_match_transformers(tmpl, conv, gen):
    messages = CONVERSATIONS[conv]
    got = render(messages, TEMPLATES[tmpl], add_generation_prompt=gen, **SPECIAL)
    assert got == _hf_render(messages, TEMPLATES[tmpl], add_generation_prompt=gen, **SPECIAL)


def test_prompts_transformers_tests_expect():
    # tests/models/llava/test_processor_llava.py and tests/models/llava_next/test_processor_llava_next.py
    one = CONVERSATIONS["one_image"]
    assert render(one, LLAVA15_CHAT_TEMPLATE) == "USER: <image>\nWhat is shown in this image? ASSISTANT:"
    assert render(one, LLAVA_NEXT_VICUNA_CHAT_TEMPLATE) == "USER: <image>\nWhat is shown in this image? ASSISTANT:"
    assert render(one, LLAVA_NEXT_MISTRAL_CHAT_TEMPLATE) == "[INST] <image>\nWhat is shown in this image? [/INST]"
    cont = [_user("Describe this image."), _assistant("There is a dog and")]
    assert (render(cont, LLAVA15_CHAT_TEMPLATE, add_generation_prompt=False, continue_final_message=True)
            == "USER: <image>\nDescribe this image. ASSISTANT: There is a dog and")
    multi = CONVERSATIONS["multi_turn"]
    assert (render(multi, LLAVA_NEXT_MISTRAL_CHAT_TEMPLATE)
            == "[INST] <image>\nWhat is this? [/INST] A cat.</s> [INST] What colour is it? [/INST]")


@pytest.mark.parametrize("tmpl", sorted(TEMPLATES))
def test_continue_final_message_matches_transformers(tmpl):
    messages = [_user("Describe this image."), _assistant("There is a dog and")]
    got = render(messages, TEMPLATES[tmpl], add_generation_prompt=False, continue_final_message=True)
    assert got == _hf_render(messages, TEMPLATES[tmpl], continue_final_message=True)
    with pytest.raises(ValueError, match="mutually exclusive"):
        render(messages, TEMPLATES[tmpl], add_generation_prompt=True, continue_final_message=True)


# Text templates exercising the environment: string content, special tokens, whitespace control,
# tojson, loop controls, namespace, raise_exception, is defined checks.
LLAMA2_STYLE = (
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
    "{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}"
    "{% set system_message = false %}{% endif %}{% for message in loop_messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if loop.index0 == 0 and system_message != false %}"
    "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
    "{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}"
    "{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}"
    "{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}"
)
MULTILINE = """{%- set ns = namespace(n=0) -%}
{% for message in messages %}
    {% if message['role'] == 'tool' %}{% continue %}{% endif %}
    {% set ns.n = ns.n + 1 %}
    <{{ message['role'] }}>{{ message['content'] | tojson }}
    {% if ns.n >= 3 %}{% break %}{% endif %}
{% endfor %}
{% if tools is defined and tools %}tools{% endif %}{% if documents is none %}nodocs{% endif %}
{% if add_generation_prompt %}<assistant>{% endif %}
"""
TEXT_CONV = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": " Hello <there> & 'you' "},
             {"role": "assistant", "content": "Hi!"}, {"role": "tool", "content": "{\"x\": 1}"},
             {"role": "user", "content": "Ünïcode ☃"}]


@pytest.mark.parametrize("gen", [True, False])
def test_text_templates_match_transformers(gen):
    for template, conv in ((LLAMA2_STYLE, TEXT_CONV[:3] + TEXT_CONV[4:]), (MULTILINE, TEXT_CONV)):
        got = render(conv, template, add_generation_prompt=gen, **SPECIAL)
        assert got == _hf_render(conv, template, add_generation_prompt=gen, **SPECIAL)
    assert "\\u" not in render(TEXT_CONV, MULTILINE)  # tojson keeps non-ASCII and does not HTML-escape
    assert '" Hello <there> & \'you\' "' in render(TEXT_CONV, MULTILINE)


def test_raise_exception_and_strftime_now():
    with pytest.raises(TemplateError, match="must alternate"):
        render([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}], LLAMA2_STYLE, **SPECIAL)
    year = render([], "{{ strftime_now('%Y') }}")
    assert year.isdigit() and len(year) == 4
    with pytest.raises(TemplateError):
        render([], "{% for x in messages %}")  # syntax error


def test_sandbox_and_rich_objects():
    import jinja2

    with pytest.raises(jinja2.exceptions.SecurityError):
        render([{"role": "user", "content": "x"}], "{{ messages.append(1) }}")
    # an image object inside a part reaches the template as a placeholder string only
    msg = [{"role": "user", "content": [{"type": "image", "image": np.zeros((2, 2, 3), np.uint8)},
                                         {"type": "text", "text": "hi"}]}]
    assert render(msg, "{{ messages[0]['content'][0]['image'] }}") == "<ndarray>"
    assert render(msg, LLAVA15_CHAT_TEMPLATE) == "USER: <image>\nhi ASSISTANT:"
    assert render([{"role": "user", "content": "x", "n": np.int64(3)}], "{{ messages[0].n + 1 }}") == "4"
    with pytest.raises(TypeError, match="message 0 must be a dict"):
        render(["hello"], LLAVA15_CHAT_TEMPLATE)


def test_string_content_with_part_templates():
    # HF renders no text for a plain-string content with these templates; text_to_parts fixes the input
    plain = [{"role": "user", "content": "What is it?"}]
    assert render(plain, LLAVA15_CHAT_TEMPLATE) == _hf_render(plain, LLAVA15_CHAT_TEMPLATE,
                                                             add_generation_prompt=True) == "USER: ASSISTANT:"
    assert render(text_to_parts(plain), LLAVA15_CHAT_TEMPLATE) == "USER: What is it? ASSISTANT:"
    assert text_to_parts(CONVERSATIONS["one_image"]) == CONVERSATIONS["one_image"]


# ================================================================ loading =======================

def _write(d, name, obj):
    with open(os.path.join(d, name), "w", encoding="utf-8") as f:
        f.write(obj if isinstance(obj, str) else json.dumps(obj))


def test_load_chat_template_sources(tmp_path):
    d = str(tmp_path)
    _write(d, "config.json", {"model_type": "llava_next", "text_config": {"model_type": "mistral"}})
    assert load_chat_template(d) == LLAVA_NEXT_MISTRAL_CHAT_TEMPLATE
    assert load_chat_template(d, default=False) is None
    _write(d, "tokenizer_config.json", {"chat_template": [{"name": "default", "template": "T-default"},
                                                          {"name": "tool_use", "template": "T-tools"}],
                                        "bos_token": {"content": "<s>", "lstrip": False}, "eos_token": "</s>",
                                        "pad_token": None, "additional_special_tokens": ["<image>"]})
    assert load_chat_template(d) == "T-default"
    assert load_chat_template(d, name="tool_use") == "T-tools"
    with pytest.raises(ConfigError, match="no chat template named 'nope'"):
        load_chat_template(d, name="nope")
    _write(d, "processor_config.json", {"chat_template": "P", "patch_size": 14})
    assert load_chat_template(d) == "P"  # processor templates render image parts: preferred
    _write(d, "chat_template.json", {"chat_template": "J"})
    assert load_chat_template(d) == "J"
    _write(d, "chat_template.jinja", "{{ 'jinja' }}\n")
    assert load_chat_template(d) == "{{ 'jinja' }}\n"
    assert special_tokens_map(d) == {"bos_token": "<s>", "eos_token": "</s>", "additional_special_tokens": ["<image>"]}
    _write(d, "special_tokens_map.json", {"eos_token": {"content": "<eos>"}})
    assert special_tokens_map(d)["eos_token"] == "<eos>"
    _write(d, "chat_template.json", "{not json")
    os.remove(os.path.join(d, "chat_template.jinja"))
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_chat_template(d)


def test_default_templates_for_fixture_checkpoints():
    assert load_chat_template(os.path.join(DATA, "llava", "tiny_llava15", "model")) == LLAVA15_CHAT_TEMPLATE
    assert (load_chat_template(os.path.join(DATA, "llava_next", "tiny_mistral_anyres", "model"))
            == LLAVA_NEXT_MISTRAL_CHAT_TEMPLATE)
    assert default_chat_template({"model_type": "llava_next", "text_config": {"model_type": "llama"}}) \
        == LLAVA_NEXT_VICUNA_CHAT_TEMPLATE
    assert default_chat_template({"model_type": "llava_next"}) == LLAVA_NEXT_VICUNA_CHAT_TEMPLATE
    assert default_chat_template({"model_type": "clip"}) is None
