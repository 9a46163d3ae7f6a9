"""Reading fine-tuning data: chat rows for SFT and preference pairs for DPO and reward models.

SFT rows (one JSON object per line): ``{"messages": [{role, content}, ...]}`` (Tulu), or ``{"prompt": str,
"completion": str}`` (a user turn and an assistant turn). ShareGPT messages ``{"from": "human"|"gpt"|"system",
"value": str}`` (in ``messages``, ShareGPT's ``conversations`` column, or a preference row's lists) become
``{"role": "user"|"assistant"|"system", "content": str}``. Preference rows: ``{"chosen": [...], "rejected": [...]}``
message lists (or completion strings answering the prompt, TRL's standard format), with an optional ``"prompt"`` (a
string or a message list put before both sides, as in UltraFeedback) and an optional numeric ``"margin"`` (used by
the reward-model loss).

A malformed row (not JSON, not an object, missing fields, unknown role, empty conversation) is an error naming the
file, the line and the fix. Rows that cannot train are skipped and counted in a :class:`LoadReport`, never dropped
silently: conversations ending on a user turn, rows whose loss tokens were all cut by truncation, and pairs whose
two sides are identical. Rows longer than ``max_length`` tokens are truncated on the right and counted (or skipped
with ``drop_truncated``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from birdie.finetune.chat import ChatFormatError, check_messages, render_chat, truncate


class DataError(ValueError):
    """A data file or row is unusable; the message names the file, the line and the fix."""


@dataclass
class LoadReport:
    """What loading did: rows read, examples kept, and every kind of skip with its count."""

    rows: int = 0
    kept: int = 0
    truncated: int = 0
    skipped: dict[str, int] = field(default_factory=dict)

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1

    def summary(self) -> str:
        parts = [f"{self.kept} of {self.rows} rows used", f"{self.truncated} truncated"]
        parts += [f"{count} skipped: {reason}" for reason, count in sorted(self.skipped.items())]
        return "; ".join(parts)


@dataclass(frozen=True)
class Example:
    """A rendered conversation: ids (T,) int64 and loss mask (T,) bool."""

    ids: np.ndarray
    mask: np.ndarray


@dataclass(frozen=True)
class Pair:
    """A preference pair: both sides rendered with loss on the last assistant turn, and the optional margin."""

    chosen: Example
    rejected: Example
    margin: float = 0.0


def read_jsonl(path: str | Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(where, row)`` for each non-blank line of a JSONL file; ``where`` is ``"FILE line N"``."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file; pass a JSONL file with one JSON object per line")
    with path.open("rb") as handle:  # bytes, so a non-UTF-8 line is named by its number
        for number, raw in enumerate(handle, 1):
            where = f"{path} line {number}"
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                raise DataError(f"{where}: not UTF-8 text (byte {error.start} of the line: {error.reason}); convert "
                                "the file (e.g. `iconv -f latin1 -t utf-8`)") from None
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise DataError(f"{where}: not valid JSON ({error.msg}); each line must be one JSON object") from None
            if not isinstance(row, dict):
                raise DataError(f"{where}: expected a JSON object, got {type(row).__name__}")
            yield where, row


#: ShareGPT speakers (``{"from", "value"}`` messages) and the roles they become.
SHAREGPT_ROLES = {"human": "user", "gpt": "assistant", "system": "system", "user": "user", "assistant": "assistant"}


def from_sharegpt(messages: Any, where: str) -> Any:
    """``messages`` with each ShareGPT ``{"from", "value"}`` message as ``{"role", "content"}``; anything else is
    returned as it is (for :func:`~birdie.finetune.chat.check_messages` to judge)."""
    if not isinstance(messages, list):
        return messages
    converted = []
    for index, message in enumerate(messages):
        if isinstance(message, dict) and "from" in message and "role" not in message:
            speaker = message["from"]
            if speaker not in SHAREGPT_ROLES:
                raise DataError(f"{where}: message {index} has unknown ShareGPT speaker 'from': {speaker!r}; valid: "
                                f"{', '.join(SHAREGPT_ROLES)}")
            if "value" not in message:
                raise DataError(f"{where}: message {index} (from {speaker!r}) has no 'value'; a ShareGPT message is "
                                "{\"from\": ..., \"value\": text}")
            message = {"role": SHAREGPT_ROLES[speaker], "content": message["value"]}
        converted.append(message)
    return converted


def sft_messages(row: dict[str, Any], where: str) -> list[dict[str, str]]:
    """The conversation of an SFT row: ``messages`` (or ShareGPT's ``conversations``) as ``{role, content}`` or
    ShareGPT ``{from, value}`` messages, or ``prompt``/``completion`` strings."""
    for key in ("messages", "conversations"):
        if key in row:
            return check_messages(from_sharegpt(row[key], where), where)
    if "prompt" in row and "completion" in row:
        if not isinstance(row["prompt"], str) or not isinstance(row["completion"], str):
            raise DataError(f"{where}: 'prompt' and 'completion' must be strings")
        return [{"role": "user", "content": row["prompt"]}, {"role": "assistant", "content": row["completion"]}]
    raise DataError(f"{where}: an SFT row needs 'messages' (a list of {{role, content}} or ShareGPT {{from, value}}), "
                    f"ShareGPT's 'conversations', or 'prompt' and 'completion'; found keys {sorted(row)}")


def _render(messages: list[dict[str, str]], tokenizer: Any, train_on: str, max_length: int, drop_truncated: bool,
            report: LoadReport, where: str, template: Any) -> Example | None:
    if messages[-1]["role"] != "assistant":
        report.skip("conversation ends on a user or system turn")
        return None
    ids, mask = render_chat(messages, tokenizer, train_on, template=template, where=where)
    ids, mask, cut = truncate(ids, mask, max_length)
    if cut:
        report.truncated += 1
        if drop_truncated:
            report.skip("truncated (drop_truncated)")
            return None
    if not mask[1:].any():
        report.skip("no assistant token left after truncation")
        return None
    return Example(ids, mask)


def load_sft(rows: Iterable[tuple[str, dict[str, Any]]], tokenizer: Any, max_length: int,
             drop_truncated: bool = False, template: Any = None) -> tuple[list[Example], LoadReport]:
    """Render SFT ``(where, row)`` pairs (loss on every assistant turn)."""
    report, examples = LoadReport(), []
    for where, row in rows:
        report.rows += 1
        try:
            messages = sft_messages(row, where)
        except ChatFormatError as error:
            raise DataError(str(error)) from None
        example = _render(messages, tokenizer, "all_assistant", max_length, drop_truncated, report, where, template)
        if example is not None:
            examples.append(example)
    report.kept = len(examples)
    return examples, report


def _side(row: dict[str, Any], key: str, where: str) -> list[dict[str, str]]:
    if key not in row:
        raise DataError(f"{where}: a preference row needs 'chosen' and 'rejected' message lists; missing {key!r}")
    side = row[key]
    if isinstance(side, str):  # TRL's standard format: the prompt, then each side as a completion string
        side = [{"role": "assistant", "content": side}]
    messages = check_messages(from_sharegpt(side, f"{where} ({key})"), f"{where} ({key})")
    prompt = row.get("prompt")
    if isinstance(prompt, str) and not (messages and messages[0]["role"] == "user"
                                        and messages[0]["content"].strip() == prompt.strip()):
        messages = [{"role": "user", "content": prompt}] + messages
    elif isinstance(prompt, list):
        messages = check_messages(from_sharegpt(prompt, f"{where} (prompt)"), f"{where} (prompt)") + messages
    return messages


def load_preferences(rows: Iterable[tuple[str, dict[str, Any]]], tokenizer: Any, max_length: int,
                     drop_truncated: bool = False, template: Any = None) -> tuple[list[Pair], LoadReport]:
    """Render preference ``(where, row)`` pairs (loss on each side's last assistant turn)."""
    report, pairs = LoadReport(), []
    for where, row in rows:
        report.rows += 1
        try:
            chosen, rejected = _side(row, "chosen", where), _side(row, "rejected", where)
        except ChatFormatError as error:
            raise DataError(str(error)) from None
        margin = row.get("margin", 0.0)
        if not isinstance(margin, (int, float)) or isinstance(margin, bool):
            raise DataError(f"{where}: 'margin' must be a number, got {margin!r}")
        if chosen == rejected:
            report.skip("chosen and rejected are identical")
            continue
        sides = [_render(side, tokenizer, "last_assistant", max_length, drop_truncated, report, where, template)
                 for side in (chosen, rejected)]
        if sides[0] is None or sides[1] is None:
            continue
        pairs.append(Pair(sides[0], sides[1], float(margin)))
    report.kept = len(pairs)
    return pairs, report
