"""Embedded fine-tuning data: questions about the synthetic stories with checkable answers.

From each story (:mod:`birdie.data.stories`) come up to three questions, each over a short passage of the story
(its opening sentence, plus the sentence holding the fact):

* who   -- "Who is the {kind}?"           -> the hero's name (the opening sentence names both)
* where -- "Where does {hero} live?"       -> the home ("a small village by the sea")
* colour -- "What colour is the {object}?" -> the colour the story gives it

The answer is read off the story text with the story word lists, so it is always right, and a corrupted answer
(another value of the same list, absent from the passage) is the rejected side of a preference pair. The held-out
split is the stories' own ``validation`` split (disjoint texts).
"""

from __future__ import annotations

import itertools
import random
import re
from dataclasses import dataclass
from typing import Any, Iterator

from birdie.data.stories import _words, stories

KINDS = ("who", "where", "colour")


@dataclass(frozen=True)
class StoryQuestion:
    """One question: ``prompt`` (passage + question), the right ``answer`` and a corrupted ``wrong`` one."""

    kind: str
    passage: str
    question: str
    answer: str
    wrong: str

    @property
    def prompt(self) -> str:
        return f"{self.passage}\n{self.question}"

    def messages(self, answer: str | None = None) -> list[dict[str, str]]:
        """The question as a chat, answered with ``answer`` (default: the right one)."""
        return [{"role": "user", "content": self.prompt},
                {"role": "assistant", "content": self.answer if answer is None else answer}]


def _first(pattern_words: list[str], text: str) -> str | None:
    for word in sorted(pattern_words, key=len, reverse=True):
        if re.search(rf"\b{re.escape(word)}\b", text):
            return word
    return None


def _wrong(rng: random.Random, pool: list[str], passage: str) -> str:
    return rng.choice([value for value in pool if not re.search(rf"\b{re.escape(value)}\b", passage)])


def questions_for_story(events: tuple[str, ...], rng: random.Random) -> list[StoryQuestion]:
    """The questions one story's ``events`` answer (see the module docstring)."""
    words = _words()
    names = sorted({name for group in words["names"].values() for name in group})
    opening = events[0]
    hero, kind = _first(names, opening), _first(words["kinds"], opening)
    home = _first([h for h, _ in words["homes"]], opening)
    found = []
    if hero and kind:
        found.append(StoryQuestion("who", opening, f"Who is the {kind}?", hero, _wrong(rng, names, opening)))
    if hero and home:
        found.append(StoryQuestion("where", opening, f"Where does {hero} live?", home,
                                   _wrong(rng, [h for h, _ in words["homes"]], opening)))
    colours = "|".join(map(re.escape, words["colors"]))
    objects = "|".join(map(re.escape, words["objects"]))
    for event in events[1:]:
        match = re.search(rf"\b({colours}) ({objects})\b", event)
        if match:
            passage = f"{opening} {event}"
            found.append(StoryQuestion("colour", passage, f"What colour is the {match.group(2)}?", match.group(1),
                                       _wrong(rng, words["colors"], passage)))
            break
    return found


def story_questions(split: str, count: int, seed: int = 0) -> list[StoryQuestion]:
    """``count`` questions from the stories of ``split`` (``"train"`` or ``"validation"``), deterministic."""
    rng = random.Random(f"birdie-story-qa:{seed}:{split}")
    stream = (q for story in stories(seed, split) for q in questions_for_story(story.events, rng))
    return list(itertools.islice(stream, count))


def chat_rows(split: str, count: int, seed: int = 0) -> Iterator[dict[str, Any]]:
    """SFT rows ``{"messages": [user, assistant]}`` answering the questions rightly."""
    return ({"messages": q.messages()} for q in story_questions(split, count, seed))


def preference_rows(split: str, count: int, seed: int = 0) -> Iterator[dict[str, Any]]:
    """Preference rows ``{"chosen": [...], "rejected": [...]}``: the right answer against the corrupted one."""
    return ({"chosen": q.messages(), "rejected": q.messages(q.wrong)} for q in story_questions(split, count, seed))
