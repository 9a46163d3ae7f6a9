"""Chat rendering in the Tulu format (EasyLM's ``encode_with_messages_format``) with an exact loss mask.

A conversation is a list of ``{"role": "system"|"user"|"assistant", "content": str}``. Each content is stripped and
rendered as::

    system    -> "<|system|>\\n" + content + "\\n"
    user      -> "<|user|>\\n" + content + "\\n"
    assistant -> "<|assistant|>\\n" + content + EOS + "\\n"

and the text is ``BOS + concat(messages).strip()`` (so no ``"\\n"`` follows the last EOS). The role headers are
ordinary text; BOS and EOS are the tokenizer's ``<|bos|>``/``<|eos|>`` ids, inserted directly (birdie tokenizers
never encode text to a special id). The ids are built segment by segment -- each run of context text, each
assistant content and each EOS tokenized on its own -- so the mask is exact for any tokenizer: the loss falls on
assistant content and its EOS only (never on headers, user or system text, BOS, or the ``"\\n"`` between turns;
EasyLM also trains that ``"\\n"`` after non-final assistant turns, an artefact of its prefix-length masking).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Sequence

import numpy as np

ROLES = ("system", "user", "assistant")
HEADERS = {role: f"<|{role}|>\n" for role in ROLES}
TrainOn = Literal["all_assistant", "last_assistant"]
TRAIN_ON = ("all_assistant", "last_assistant")


class ChatFormatError(ValueError):
    """A conversation row is malformed; the message names the row and the problem."""


@dataclass(frozen=True)
class Segment:
    """One piece of a rendered conversation: ``kind`` is ``"text"``, ``"bos"`` or ``"eos"``; ``trained`` says
    whether its tokens carry loss."""

    kind: str
    text: str
    trained: bool


def check_messages(messages: Any, where: str = "conversation") -> list[dict[str, str]]:
    """``messages`` validated: a non-empty list of ``{"role", "content"}`` with known roles and string content.

    Raises:
        ChatFormatError: naming ``where`` (e.g. ``"data.jsonl row 7"``), the message index and the fix.
    """
    if not isinstance(messages, (list, tuple)):
        raise ChatFormatError(f"{where}: 'messages' must be a list of {{role, content}} objects, got "
                              f"{type(messages).__name__}")
    if not messages:
        raise ChatFormatError(f"{where}: the conversation is empty; give at least one user and one assistant message")
    checked = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or "role" not in message or "content" not in message:
            raise ChatFormatError(f"{where}: message {index} must be an object with 'role' and 'content', got "
                                  f"{str(message)[:80]!r}")
        role, content = message["role"], message["content"]
        if role not in ROLES:
            raise ChatFormatError(f"{where}: message {index} has unknown role {role!r}; valid roles: "
                                  f"{', '.join(ROLES)}")
        if not isinstance(content, str):
            raise ChatFormatError(f"{where}: message {index} ({role}) content must be a string, got "
                                  f"{type(content).__name__}")
        checked.append({"role": role, "content": content})
    return checked


def _trained_indices(messages: Sequence[dict[str, str]], train_on: str) -> set[int]:
    assistants = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
    if train_on == "all_assistant":
        return set(assistants)
    if train_on == "last_assistant":
        return set(assistants[-1:])
    raise ValueError(f"train_on={train_on!r}: use one of {', '.join(TRAIN_ON)}")


def chat_segments(messages: Sequence[dict[str, str]], train_on: TrainOn = "all_assistant") -> list[Segment]:
    """The Tulu rendering of ``messages`` as segments (see the module docstring); messages must be checked."""
    trained = _trained_indices(messages, train_on)
    segments = [Segment("bos", "", False)]
    context = ""
    for index, message in enumerate(messages):
        role, content = message["role"], message["content"].strip()
        if role != "assistant":
            context += HEADERS[role] + content + "\n"
            continue
        segments.append(Segment("text", context + HEADERS["assistant"], False))
        segments += [Segment("text", content, index in trained), Segment("eos", "", index in trained)]
        context = "\n"
    # The final .strip() of EasyLM's text: only trailing context can end in whitespace (content is stripped).
    segments.append(Segment("text", context.rstrip(), False))
    return [s for s in segments if s.kind != "text" or s.text]


def render_chat_text(messages: Sequence[dict[str, str]], bos: str = "<s>", eos: str = "</s>") -> str:
    """The rendered conversation as one string with ``bos``/``eos`` spelled out (EasyLM's ``text``)."""
    marks = {"bos": bos, "eos": eos}
    return "".join(marks.get(s.kind, s.text) for s in chat_segments(check_messages(messages)))


def encode_segments(segments: Sequence[Segment], tokenizer: Any) -> tuple[np.ndarray, np.ndarray]:
    """Token ids (int64, shape (T,)) and loss mask (bool, (T,)) of ``segments``: each text segment encoded on its
    own, BOS/EOS as the tokenizer's special ids; the mask is True on the tokens of trained segments."""
    special = {"bos": tokenizer.specials.id("bos"), "eos": tokenizer.specials.id("eos")}
    ids: list[np.ndarray] = []
    mask: list[np.ndarray] = []
    for segment in segments:
        piece = (np.array([special[segment.kind]], dtype=np.int64) if segment.kind in special
                 else np.asarray(tokenizer.encode(segment.text), dtype=np.int64))
        ids.append(piece)
        mask.append(np.full(len(piece), segment.trained))
    return np.concatenate(ids), np.concatenate(mask)


def render_chat(messages: Sequence[dict[str, str]], tokenizer: Any, train_on: TrainOn = "all_assistant",
                template: Any = None, where: str = "conversation") -> tuple[np.ndarray, np.ndarray]:
    """Render and tokenize one conversation: ``(ids, loss_mask)``, int64 and bool arrays of shape (T,).

    Args:
        messages: ``[{"role", "content"}, ...]`` with roles system/user/assistant.
        tokenizer: a birdie tokenizer (``encode``, ``specials``).
        train_on: ``"all_assistant"`` (SFT) or ``"last_assistant"`` (preference data: only the final assistant
            turn carries loss; earlier ones are context).
        template: a :class:`birdie.finetune.chat_template.ChatTemplate` (a tokenizer's own Jinja chat template)
            instead of the Tulu format.
        where: names the row in errors.

    ``loss_mask[t]`` says whether token ``t`` is a training target (predicted from the tokens before it).

    Raises:
        ChatFormatError: malformed or empty conversation, unknown role.
    """
    checked = check_messages(messages, where)
    segments = (chat_segments(checked, train_on) if template is None
                else template.segments(checked, _trained_indices(checked, train_on), where))
    return encode_segments(segments, tokenizer)


def truncate(ids: np.ndarray, mask: np.ndarray, max_length: int) -> tuple[np.ndarray, np.ndarray, bool]:
    """Right-truncate to ``max_length`` tokens (as EasyLM does); the flag says whether anything was cut."""
    return ids[:max_length], mask[:max_length], len(ids) > max_length
