"""Story infilling (Birdie §6.1, A.16): pick the event that fills a story's blank among four options.

An item shows 3..7 consecutive events of a story, numbered, with one replaced by ``(blank)``, and four options
``(A)``..``(D)``: the removed event and three distractors. Distractors come from other positions of the same story
when it has events outside the shown window (same cast, wrong moment), and otherwise from other stories. The
prompt follows the paper::

    Consider the following sequence of events, then select a choice that best fills in the missing entry:
    1. Tom lost his red kite.
    2. (blank)
    3. They found it in the old mill.

    Choices:
    (A) ...
    (D) ...

    Which choice best fills in the missing entry?

A model answers with the option whose text has the lowest per-token loss as the target after that prompt
(:func:`birdie.eval.scoring.option_losses`); chance is 25%.

Items come from the synthetic corpus's validation split (:mod:`birdie.data.stories`, never trained on) or from a
user's corpus: a JSONL file whose records hold ``events`` (a list of strings) or ``text`` (split into sentences),
or a text file with one story per paragraph.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import random
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from birdie.checks import check
from birdie.eval import cache
from birdie.eval.registry import EvalTask, evaluate_task, register

LETTERS = ("A", "B", "C", "D")
RANDOM_ACCURACY = 1 / len(LETTERS)
INSTRUCTION = "Consider the following sequence of events, then select a choice that best fills in the missing entry:"
QUESTION = "Which choice best fills in the missing entry?"
_SENTENCE_END = re.compile(r'(?:(?<=[.!?])|(?<=[.!?]["\']))\s+(?=["\'A-Z0-9])')


@dataclass(frozen=True)
class InfillingConfig:
    """Options of a story-infilling set.

    Attributes:
        num_items: items in the set.
        min_events, max_events: events shown per item (the paper uses 3..7).
        seed: the set's seed (for the synthetic corpus also the corpus seed).
    """

    num_items: int = 200
    min_events: int = 3
    max_events: int = 7
    seed: int = 0

    def __post_init__(self) -> None:
        check(self, "num_items", self.num_items >= 1, "must be >= 1")
        check(self, "min_events", 3 <= self.min_events <= self.max_events,
              f"must be in [3, max_events={self.max_events}]")

    def options(self) -> dict[str, Any]:
        return asdict(self)


def split_events(text: str) -> list[str]:
    """Split a story text into sentences (the events of a user corpus given as plain text)."""
    return [sentence.strip() for sentence in _SENTENCE_END.split(text.strip()) if sentence.strip()]


def format_prompt(events: Sequence[str], options: Sequence[str]) -> str:
    """The paper's prompt for ``events`` (one of them ``"(blank)"``) and four ``options``."""
    numbered = "\n".join(f"{number}. {event}" for number, event in enumerate(events, 1))
    choices = "\n".join(f"({letter}) {option}" for letter, option in zip(LETTERS, options))
    return f"{INSTRUCTION}\n{numbered}\n\nChoices:\n{choices}\n\n{QUESTION}"


def _pick_distractors(
    story: Sequence[str], window: range, answer: str, other_events: Sequence[str], rng: random.Random
) -> list[str]:
    shown = {story[i] for i in window}
    outside = [e for i, e in enumerate(story) if i not in window and e != answer and e not in shown]
    candidates = list(dict.fromkeys(rng.sample(outside, len(outside))))
    distractors = candidates[:1]
    # The rest from other stories, skipping anything equal to the answer or to an event already on screen.
    for event in rng.sample(list(other_events), len(other_events)):
        if len(distractors) == len(LETTERS) - 1:
            break
        if event != answer and event not in shown and event not in distractors:
            distractors.append(event)
    for event in candidates[1:]:
        if len(distractors) == len(LETTERS) - 1:
            break
        distractors.append(event)
    if len(distractors) < len(LETTERS) - 1:
        raise ValueError("story infilling: not enough distinct events for three distractors; give more stories")
    return distractors


def make_item(
    story: Sequence[str], other_events: Sequence[str], config: InfillingConfig, rng: random.Random, item_id: str
) -> dict[str, Any]:
    """One item from ``story`` (its events, at least ``config.min_events``) with distractors.

    Returns:
        ``{"id", "prompt", "options" (4 texts), "answer" (0..3), "events" (with "(blank)"), "blank" (0-based)}``.
    """
    length = rng.randint(config.min_events, min(config.max_events, len(story)))
    start = rng.randint(0, len(story) - length)
    window = range(start, start + length)
    blank = rng.randrange(length)
    answer_text = story[start + blank]
    options = _pick_distractors(story, window, answer_text, other_events, rng) + [answer_text]
    rng.shuffle(options)
    events = [story[i] for i in window]
    events[blank] = "(blank)"
    return {
        "id": item_id, "prompt": format_prompt(events, options), "options": options,
        "answer": options.index(answer_text), "events": events, "blank": blank,
    }


def items_from_stories(stories: Sequence[Sequence[str]], config: InfillingConfig) -> list[dict[str, Any]]:
    """``config.num_items`` items from a list of stories (each a list of events), cycling over them.

    Stories shorter than ``config.min_events`` are not used; distractors from other stories come from the whole
    list. Raises ``ValueError`` when no story is long enough.
    """
    usable = [list(story) for story in stories if len(story) >= config.min_events]
    if not usable:
        raise ValueError(f"story infilling: no story has >= {config.min_events} events "
                         f"({len(stories)} stories given)")
    rng = random.Random(f"birdie-infilling:{config.seed}")
    order = rng.sample(range(len(usable)), len(usable))
    items = []
    for number, position in zip(range(config.num_items), itertools.cycle(order)):
        story = usable[position]
        neighbours = [usable[(position + offset) % len(usable)] for offset in range(1, min(len(usable), 9))]
        other_events = [event for other in neighbours for event in other]
        items.append(make_item(story, other_events, config, rng, f"infilling-{config.seed}-{number}"))
    return items


def synthetic_items(config: InfillingConfig) -> list[dict[str, Any]]:
    """Items built from the synthetic corpus's validation split (seed ``config.seed``)."""
    from birdie.data.stories import stories

    corpus = [list(story.events) for story in itertools.islice(stories(config.seed, "validation"), config.num_items)]
    return items_from_stories(corpus, config)


def load_story_corpus(path: str | Path) -> list[list[str]]:
    """Stories from a user file: JSONL (``events`` list or ``text``) or plain text (one story per paragraph)."""
    path = Path(path)
    content = path.read_text(encoding="utf-8")
    if path.suffix in (".jsonl", ".json"):
        stories = []
        for number, line in enumerate(content.splitlines(), 1):
            if not line.strip():
                continue
            record = json.loads(line)
            if isinstance(record, dict) and isinstance(record.get("events"), list):
                stories.append([str(event).strip() for event in record["events"]])
            elif isinstance(record, dict) and isinstance(record.get("text"), str):
                stories.append(split_events(record["text"]))
            else:
                raise ValueError(f"{path}:{number}: expected an object with 'events' (list) or 'text' (string)")
        return stories
    return [split_events(paragraph) for paragraph in re.split(r"\n\s*\n", content) if paragraph.strip()]


def score_choices(items: Sequence[dict[str, Any]], chosen: Iterable[int]) -> dict[str, Any]:
    """Accuracy of the chosen option indices: ``{"accuracy", "num_items", "random_accuracy"}``."""
    chosen = list(chosen)
    if len(chosen) != len(items) or not items:
        raise ValueError(f"score_choices: {len(items)} items but {len(chosen)} choices (need the same, > 0)")
    correct = sum(int(choice == item["answer"]) for item, choice in zip(items, chosen))
    return {"accuracy": correct / len(items), "num_items": len(items), "random_accuracy": RANDOM_ACCURACY}


def evaluate_story_infilling(
    model: Any, tokenizer: Any, items: Sequence[dict[str, Any]], batch_size: int = 16, progress: bool = False,
    prompt_format: Any = None,
) -> tuple[dict[str, Any], list[int]]:
    """Choose, for each item, the option with the lowest length-normalised loss; ``(scores, choices)``.

    ``prompt_format`` is a :class:`birdie.eval.scoring.PromptFormat` (default: prompt as bidirectional prefix).
    """
    return evaluate_task(StoryInfilling(), model, tokenizer, items, argparse.Namespace(), batch_size, progress,
                         prompt_format)


@register
class StoryInfilling(EvalTask):
    """Pick the event that fills a story's blank among four options (accuracy; chance 25%)."""

    name = "story-infilling"
    help = "four-way multiple choice over story events (accuracy)"
    request_type = "multiple_choice"
    metrics = ("accuracy",)
    standalone_hint = " to score, or --generate FILE"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--corpus", metavar="FILE", help="stories to build items from: JSONL with 'events' or "
                                                              "'text', or text with one story per paragraph "
                                                              "(default: the synthetic corpus's validation split)")
        parser.add_argument("--generate", metavar="FILE", help="write the items to FILE (JSONL + manifest)")
        parser.add_argument("--data", metavar="FILE", help="score an existing JSONL item set")
        parser.add_argument("--num-items", type=int, default=200)
        parser.add_argument("--min-events", type=int, default=3)
        parser.add_argument("--max-events", type=int, default=7)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--cache-dir", help="where generated sets are cached")

    def standalone(self, options: argparse.Namespace) -> bool:
        return bool(options.generate)

    def _options(self, options: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
        config = InfillingConfig(options.num_items, options.min_events, options.max_events, options.seed)
        recorded = {**config.options(), "corpus": options.corpus}
        if options.corpus:
            recorded["corpus_sha256"] = hashlib.sha256(Path(options.corpus).read_bytes()).hexdigest()
        return config, recorded

    def items(self, options: argparse.Namespace) -> list[dict[str, Any]]:
        config, recorded = self._options(options)
        if options.corpus:
            return cache.cached_set(options, self.name, recorded,
                              lambda: items_from_stories(load_story_corpus(options.corpus), config))
        return cache.cached_set(options, self.name, recorded, lambda: synthetic_items(config))

    def score(self, items: Sequence[dict[str, Any]], predictions: Sequence[Any], tokenizer: Any) -> dict[str, Any]:
        return score_choices(items, predictions)

    def table(self, metrics: dict[str, Any], options: argparse.Namespace) -> tuple[list[str], list[list[Any]]]:
        return ["items", "accuracy", "random"], [[metrics["num_items"], metrics["accuracy"],
                                                  metrics["random_accuracy"]]]

    def result_options(self, options: argparse.Namespace) -> dict[str, Any]:
        return self._options(options)[1]
