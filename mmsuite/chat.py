"""Chat templates rendered the way transformers v4.47.1 `apply_chat_template(..., tokenize=False)`
does: a jinja2 ImmutableSandboxedEnvironment with trim_blocks/lstrip_blocks, the `loopcontrols`
extension and a `{% generation %}` block tag, `raise_exception` / `strftime_now` globals, a `tojson`
filter that does not HTML-escape, and `messages`, `tools`, `documents`, `add_generation_prompt` plus
the special tokens as template variables.

Templates come from a checkpoint (`load_chat_template`) or, when it ships none, the llava-hf defaults
below. Rendering only builds the prompt text; image placeholders (`<image>`) are expanded afterwards
(mmsuite.llava_processor.expand_image_placeholders / expand_image_tokens).
"""
import dataclasses
import json
import os
from datetime import datetime
from functools import lru_cache

import jinja2
from jinja2 import nodes
from jinja2.ext import Extension
from jinja2.sandbox import ImmutableSandboxedEnvironment

from ._jsonio import read_json
from .errors import ConfigError

__all__ = ["LLAVA15_CHAT_TEMPLATE", "LLAVA_NEXT_MISTRAL_CHAT_TEMPLATE", "LLAVA_NEXT_VICUNA_CHAT_TEMPLATE",
           "TemplateError", "compile_template", "render", "load_chat_template", "default_chat_template",
           "special_tokens_map", "text_to_parts"]

TemplateError = jinja2.exceptions.TemplateError

# ---- default templates -----------------------------------------------------------------------
# Origin: the `chat_template` of the llava-hf processor repos, as copied into transformers' own
# tests and conversion scripts:
# * LLaVA-1.5 (llava-hf/llava-1.5-7b-hf, chat_template.json): transformers
#   tests/models/llava/test_processor_llava.py `prepare_processor_dict` (the hub template; its
#   `test_chat_template` expects "USER: <image>\nWhat is shown in this image? ASSISTANT:").
LLAVA15_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] != 'system' %}{{ message['role'].upper() + ': '}}"
    "{% endif %}{# Render all images first #}{% for content in message['content'] | selectattr('type', "
    "'equalto', 'image') %}{{ '<image>\n' }}{% endfor %}{# Render all text next #}{% if message['role'] != "
    "'assistant' %}{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{{ content['text'] + ' '}}{% endfor %}{% else %}{% for content in message['content'] | "
    "selectattr('type', 'equalto', 'text') %}{% generation %}{{ content['text'] + ' '}}{% endgeneration %}"
    "{% endfor %}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)
# * LLaVA-NeXT Mistral (llava-hf/llava-v1.6-mistral-7b-hf, chat_template.json): "[INST] <image>\n{q}
#   [/INST]"; it has no add_generation_prompt branch. Early revisions of that repo closed assistant
#   turns with a mistyped '<\\s> '; this is the corrected '</s> ' the repo ships now.
LLAVA_NEXT_MISTRAL_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] == 'system' %}{{ '<<SYS>>\n' + "
    "message['content'][0]['text'] + '\n<</SYS>>\n\n' }}{% elif message['role'] == 'user' %}{{ '[INST] ' }}"
    "{# Render all images first #}{% for content in message['content'] | selectattr('type', 'equalto', "
    "'image') %}{{ '<image>\n' }}{% endfor %}{# Render all text next #}{% for content in message['content'] "
    "| selectattr('type', 'equalto', 'text') %}{{ content['text'] }}{% endfor %}{{' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ ' ' + message['content'][0]['text'] + '</s> '}}{% else %}"
    "{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}"
)
# * LLaVA-NeXT Vicuna (llava-hf/llava-v1.6-vicuna-{7,13}b-hf): `chat_vicuna` of transformers
#   src/transformers/models/llava_next_video/convert_llava_next_video_weights_to_hf.py; the system
#   text is written as is, then "USER: <image>\n{q} ASSISTANT:" (transformers'
#   tests/models/llava_next/test_processor_llava_next.py expects exactly that for this checkpoint).
LLAVA_NEXT_VICUNA_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] == 'system' %}{{ message['content'][0]['text'] }}"
    "{% else %}{{ message['role'].upper() + ': '}}{% endif %}{# Render all images first #}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>\n' }}"
    "{% endfor %}{# Render all text next #}{% for content in message['content'] | selectattr('type', "
    "'equalto', 'text') %}{{ content['text'] + ' '}}{% endfor %}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)


# ---- environment -----------------------------------------------------------------------------

class _GenerationTag(Extension):
    """`{% generation %}...{% endgeneration %}`: HF's AssistantTracker marks assistant spans for
    return_assistant_tokens_mask; for plain rendering it outputs its body unchanged."""
    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return nodes.CallBlock(self.call_method("_body"), [], [], body).set_lineno(lineno)

    def _body(self, caller):
        return caller()


def _raise_exception(message):
    raise TemplateError(message)


def _tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    # HF overrides jinja's tojson, which HTML-escapes <, >, & and ' (wrong for prompts)
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def _strftime_now(fmt):
    return datetime.now().strftime(fmt)


@lru_cache(maxsize=64)
def compile_template(template):
    """Compile a chat template string once (cached by its text)."""
    if not isinstance(template, str):
        raise TypeError(f"chat template must be a string, got {type(template).__name__}")
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[_GenerationTag, jinja2.ext.loopcontrols])
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    return env.from_string(template)


# ---- rendering -------------------------------------------------------------------------------

def _plain(value):
    # Templates only test whether media keys exist. Rich objects in messages (decoded images,
    # arrays) expose methods the sandbox does not know to be unsafe (numpy's tofile writes files),
    # so everything the template sees is rebuilt from JSON types; other objects become "<TypeName>".
    if value is None or type(value) in (str, int, float, bool):
        return value
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, int):
        return int.__int__(value)
    if isinstance(value, float):
        return float.__float__(value)
    if isinstance(value, dict):
        return {_plain(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    if hasattr(value, "item") and getattr(value, "shape", None) == ():  # numpy scalars
        return _plain(value.item())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return f"<{type(value).__name__}>"


def text_to_parts(messages):
    """Copy of `messages` with every string `content` turned into [{"type": "text", "text": s}].
    The llava templates iterate content parts: given a plain string they silently drop the text
    (as HF does), so convert plain-text conversations with this before rendering them."""
    return [dict(m, content=[{"type": "text", "text": m["content"]}]) if isinstance(m.get("content"), str) else m
            for m in messages]


def render(messages, template, add_generation_prompt=True, continue_final_message=False, tools=None,
           documents=None, **extra):
    """Render one conversation (a list of {"role", "content"} dicts; content a string or a list of
    parts like {"type": "text", "text": ...} / {"type": "image"}) to the prompt string.
    `extra` become template variables (bos_token, eos_token, ... see special_tokens_map).
    continue_final_message: end the prompt inside the last message (v4.47.1 semantics: cut after
    the last occurrence of its (last) text). Template errors raise TemplateError."""
    if add_generation_prompt and continue_final_message:
        raise ValueError("chat: continue_final_message and add_generation_prompt are mutually exclusive")
    if hasattr(messages, "messages"):
        messages = messages.messages
    messages = list(messages)
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            raise TypeError(f"chat: message {i} must be a dict with 'role' and 'content', got {type(m).__name__}")
    chat = _plain(messages)
    out = compile_template(template).render(messages=chat, tools=_plain(tools), documents=_plain(documents),
                                            add_generation_prompt=bool(add_generation_prompt), **_plain(extra))
    if continue_final_message:
        if not chat:
            raise ValueError("chat: continue_final_message is set but the conversation is empty")
        final = chat[-1].get("content")
        if isinstance(final, (list, tuple)):
            texts = [p["text"] for p in final if isinstance(p, dict) and "text" in p]
            if not texts:
                raise ValueError("chat: continue_final_message is set but the final message holds no text")
            final = texts[-1]
        if not isinstance(final, str):
            raise ValueError("chat: continue_final_message is set but the final message holds no text")
        if final in out:
            out = out[:out.rindex(final) + len(final)]
        elif final.strip() in out:  # templates that strip messages (e.g. Llama 3)
            final = final.strip()
            out = out[:out.rindex(final) + len(final)]
        else:
            raise ValueError("chat: continue_final_message is set but the template does not reproduce the "
                             "final message's text")
    return out


# ---- loading ---------------------------------------------------------------------------------

def _read_json(path):
    return read_json(path, "chat", ConfigError)


def _pick_named(value, name, where):
    """tokenizer_config.json may hold a list of {"name", "template"}: pick `name` or "default"."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        named = {}
        for t in value:
            if not isinstance(t, dict) or not isinstance(t.get("name"), str) or not isinstance(t.get("template"), str):
                raise ConfigError(f"chat: {where}: chat_template list entries need 'name' and 'template' strings")
            named[t["name"]] = t["template"]
        key = name or "default"
        if key not in named:
            raise ConfigError(f"chat: {where}: no chat template named {key!r} (have {', '.join(sorted(named))})")
        return named[key]
    if isinstance(value, dict):  # a {"name": template} mapping, as saved by some versions
        return _pick_named([{"name": k, "template": v} for k, v in value.items()], name, where)
    raise ConfigError(f"chat: {where}: chat_template must be a string or a list of named templates")


def default_chat_template(config):
    """The llava-hf default for a config.json dict, or None: llava -> LLaVA-1.5; llava_next ->
    Mistral's [INST] template for a mistral text model, else the Vicuna one."""
    mt = config.get("model_type")
    if mt == "llava":
        return LLAVA15_CHAT_TEMPLATE
    if mt == "llava_next":
        text_type = (config.get("text_config") or {}).get("model_type", "llama")
        return LLAVA_NEXT_MISTRAL_CHAT_TEMPLATE if text_type == "mistral" else LLAVA_NEXT_VICUNA_CHAT_TEMPLATE
    return None


def load_chat_template(model_dir, name=None, default=True):
    """The chat template of a checkpoint directory, looked up in the processor's files first
    (chat_template.jinja, chat_template.json, processor_config.json: multimodal templates that
    render image parts) and then tokenizer_config.json (often a text-only template; a list of named
    templates picks `name` or "default"). When none holds one and `default` is true, the llava-hf
    default for config.json's model type; otherwise None."""
    model_dir = os.fspath(model_dir)
    jinja_file = os.path.join(model_dir, "chat_template.jinja")
    if os.path.isfile(jinja_file):
        with open(jinja_file, "r", encoding="utf-8") as f:
            return f.read()
    for fname in ("chat_template.json", "processor_config.json", "tokenizer_config.json"):
        file = os.path.join(model_dir, fname)
        if not os.path.isfile(file):
            continue
        d = _read_json(file)
        if isinstance(d, dict) and d.get("chat_template") is not None:
            return _pick_named(d["chat_template"], name, file)
    if default:
        cfg = os.path.join(model_dir, "config.json")
        if os.path.isfile(cfg):
            return default_chat_template(_read_json(cfg))
    return None


_SPECIAL_KEYS = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token",
                 "additional_special_tokens")


def special_tokens_map(model_dir):
    """{bos_token: str, eos_token: str, ...} as HF passes them to templates, from
    special_tokens_map.json then tokenizer_config.json (AddedToken dicts reduced to their content;
    absent / null tokens are left out)."""
    out = {}

    def text(v):
        return v.get("content") if isinstance(v, dict) else v

    for fname in ("tokenizer_config.json", "special_tokens_map.json"):  # the latter wins, as in HF
        file = os.path.join(os.fspath(model_dir), fname)
        if not os.path.isfile(file):
            continue
        d = _read_json(file)
        for k in _SPECIAL_KEYS:
            v = d.get(k)
            if v is None:
                continue
            out[k] = [text(x) for x in v] if k == "additional_special_tokens" else text(v)
    return out
