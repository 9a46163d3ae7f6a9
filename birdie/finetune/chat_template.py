"""A tokenizer's own chat template (the ``chat_template`` of a HF ``tokenizer_config.json``), rendered with Jinja2.

The loss mask comes from prefix renderings: for each trained assistant turn ``i``, the template renders
``messages[:i]`` with the generation prompt and ``messages[:i+1]`` without it; the text between the two is the
turn (content plus the template's end-of-turn marks) and carries loss, trailing whitespace excepted. The template
must be prefix-stable (each rendering a prefix of the next), as common templates are; otherwise the error says so.
The template's ``bos_token``/``eos_token`` strings become birdie's BOS/EOS ids.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from birdie.finetune.chat import ChatFormatError, Segment


#: The Tulu format (:mod:`birdie.finetune.chat`) as a Jinja chat template: what fine-tuned exports ship in their
#: ``tokenizer_config.json``, for tools that apply a tokenizer's chat template (lm-eval ``--apply_chat_template``).
TULU_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% set newline = '\n' if not loop.last or add_generation_prompt else '' %}"
    "{% if message['role'] == 'assistant' %}"
    "{{ '<|assistant|>\n' + message['content'] | trim + eos_token + ('\n' if not loop.last else '') }}"
    "{% elif message['role'] in ['system', 'user'] %}"
    "{{ '<|' + message['role'] + '|>\n' + message['content'] | trim + newline }}"
    "{% else %}{{ raise_exception('unknown role ' + message['role']) }}{% endif %}"
    "{% if loop.last and add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
    "{% endfor %}")


def write_tokenizer_config(directory: str | Path, bos_token: str = "<|bos|>", eos_token: str = "<|eos|>") -> None:
    """Write ``tokenizer_config.json`` with the Tulu chat template and birdie's BOS/EOS names."""
    config = {"chat_template": TULU_TEMPLATE, "bos_token": bos_token, "eos_token": eos_token}
    (Path(directory) / "tokenizer_config.json").write_text(json.dumps(config, indent=2))


def _token_text(value: Any) -> str:
    """A special token in tokenizer_config.json: a string or ``{"content": str, ...}``."""
    if isinstance(value, dict):
        return str(value.get("content", ""))
    return value or ""


@dataclass(frozen=True)
class ChatTemplate:
    """A Jinja chat template with the strings it uses for BOS and EOS."""

    source: str
    bos_token: str = ""
    eos_token: str = ""

    @classmethod
    def from_tokenizer_config(cls, path: str | Path) -> "ChatTemplate":
        """Read ``chat_template`` (a string, or a list of ``{name, template}`` where ``default`` is used),
        ``bos_token`` and ``eos_token`` from a ``tokenizer_config.json`` (or the directory holding one)."""
        path = Path(path)
        if path.is_dir():
            path = path / "tokenizer_config.json"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no tokenizer_config.json; pass the file or its directory")
        config = json.loads(path.read_text())
        template = config.get("chat_template")
        if isinstance(template, list):
            named = {entry.get("name"): entry.get("template") for entry in template if isinstance(entry, dict)}
            template = named.get("default")
        if not isinstance(template, str) or not template:
            raise ValueError(f"{path} has no chat_template string; use the built-in Tulu format instead")
        return cls(template, _token_text(config.get("bos_token")), _token_text(config.get("eos_token")))

    def render(self, messages: Sequence[dict[str, str]], add_generation_prompt: bool = False) -> str:
        """The template's text for ``messages``."""
        try:
            from jinja2.sandbox import ImmutableSandboxedEnvironment
        except ImportError:
            raise ImportError("chat templates need jinja2: pip install jinja2 (or birdie-lm[chat])") from None

        def raise_exception(message: str) -> None:
            raise ChatFormatError(f"the chat template refused the conversation: {message}")

        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        env.globals["raise_exception"] = raise_exception
        return env.from_string(self.source).render(
            messages=list(messages), bos_token=self.bos_token, eos_token=self.eos_token,
            add_generation_prompt=add_generation_prompt)

    def segments(self, messages: Sequence[dict[str, str]], trained: set[int], where: str) -> list[Segment]:
        """The rendering as segments; the turns in ``trained`` carry loss."""
        full = self.render(messages)
        spans: list[tuple[int, int]] = []
        for index in sorted(trained):
            start = self.render(messages[:index], add_generation_prompt=True)
            turn = self.render(messages[:index + 1])
            if not turn.startswith(start) or not full.startswith(turn):
                raise ChatFormatError(f"{where}: the chat template is not prefix-stable at message {index}, so the "
                                      "assistant turns cannot be located; use the built-in Tulu format")
            spans.append((len(start), len(turn.rstrip())))
        segments, position = [], 0
        for start, end in spans:
            segments += self._split(full[position:start], False) + self._split(full[start:end], True)
            position = end
        return segments + self._split(full[position:], False)

    def _split(self, text: str, trained: bool) -> list[Segment]:
        """``text`` as text segments with the BOS/EOS strings cut out as special segments."""
        marks = [(mark, kind) for mark, kind in ((self.bos_token, "bos"), (self.eos_token, "eos")) if mark]
        segments: list[Segment] = []
        while text:
            found = [(text.find(mark), mark, kind) for mark, kind in marks if mark in text]
            if not found:
                segments.append(Segment("text", text, trained))
                break
            at, mark, kind = min(found)
            if at:
                segments.append(Segment("text", text[:at], trained))
            segments.append(Segment(kind, "", trained))
            text = text[at + len(mark):]
        return segments
