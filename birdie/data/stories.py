"""The embedded default corpus: seeded synthetic short stories.

Each story is a small cast (a hero, a friend, an elder), a home, places and a treasured object, run through one of
six plots (a lost object, a journey, a contest, a new friend, a night-time mystery, building something), or a chain
of two or three of them. A plot is an ordered list of event slots; each slot has several phrasings, some slots
are optional and some repeat, so the stories differ in vocabulary, length and structure while keeping the cast
consistent from event to event. That consistency and ordering is what makes the story-infilling evaluation
(``birdie.eval.story_infilling``) answerable.

Contract:

* :func:`generate_story` ``(seed, index)`` is a pure function: the same pair always gives the same :class:`Story`,
  with 50..400 words.
* :func:`story_texts` ``(seed, split)`` streams one split without end. A story belongs to ``"validation"`` when a
  hash of its text falls in the validation bucket (1 in :data:`VALIDATION_EVERY`), otherwise to ``"train"``, so the
  two splits never share a document (not even two equal texts born at different indices).
* :func:`synthetic_stories` is the same stream as a pipeline source in the seeds' contract
  ``ds(split, worker_id, num_workers, rng_seed) -> iterable of {"text": str}``; worker ``w`` of ``n`` reads the
  indices ``w, w + n, w + 2n, ...``, so the workers together cover each index once.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import random
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator

from birdie.data.sources import check_split

MIN_WORDS = 50
MAX_WORDS = 400
#: One story in this many (by text hash) belongs to the validation split.
VALIDATION_EVERY = 20
_MAX_ATTEMPTS = 64


@dataclass(frozen=True)
class Story:
    """One generated story.

    Attributes:
        plot: the plots it follows, joined by ``+`` (keys of the word file's ``arcs``).
        events: the story as ordered events, each one or two sentences.
        text: the events joined by spaces (the document the corpus yields).
    """

    plot: str
    events: tuple[str, ...]

    @property
    def text(self) -> str:
        return " ".join(self.events)

    @property
    def num_words(self) -> int:
        return len(self.text.split())


@lru_cache(maxsize=1)
def _words() -> dict[str, Any]:
    return json.loads((Path(__file__).with_name("story_words.json")).read_text(encoding="utf-8"))


def plots() -> tuple[str, ...]:
    """Names of the plots stories are drawn from."""
    return tuple(_words()["arcs"])


class _Slots(dict):
    """Template fields: fixed per story, except ``any_*`` fields, which draw afresh at every use.

    A drawn value may itself contain fields (``"{his} {object} broke in two"``); they are filled from this mapping.
    """

    def __init__(self, fixed: dict[str, str], rng: random.Random, pools: dict[str, list[str]]):
        super().__init__(fixed)
        self._rng = rng
        self._pools = pools

    def __missing__(self, key: str) -> str:
        if key.startswith("any_") and key[4:] in self._pools:
            return self._rng.choice(self._pools[key[4:]]).format_map(self)
        raise KeyError(f"story template uses unknown field {{{key}}}")


def _cast(rng: random.Random, words: dict[str, Any]) -> dict[str, str]:
    genders = list(words["names"])
    hero_gender, friend_gender, elder_gender = (rng.choice(genders) for _ in range(3))
    hero = rng.choice(words["names"][hero_gender])
    friend = rng.choice([n for n in words["names"][friend_gender] if n != hero])
    elder = rng.choice([n for n in words["names"][elder_gender] if n not in (hero, friend)])
    hero_pronouns = words["pronouns"][hero_gender]
    friend_pronouns = words["pronouns"][friend_gender]
    home, town = rng.choice(words["homes"])
    place, place2 = rng.sample(words["places"], 2)
    time, time2 = rng.sample(words["times"], 2)
    kind, fkind, ekind, akind = rng.sample(words["kinds"], 4)
    cause, cause_detail = rng.choice(words["causes"])
    contest, practice, entry = rng.choice(words["contests"])
    project, materials = rng.choice(words["projects"])
    fields = {
        "hero": hero, "friend": friend, "elder": elder,
        "kind": kind, "fkind": fkind, "ekind": ekind, "akind": akind,
        "trait": rng.choice(words["traits"]), "ftrait": rng.choice(words["traits"]),
        "he": hero_pronouns["he"], "him": hero_pronouns["him"], "his": hero_pronouns["his"],
        "fhe": friend_pronouns["he"], "fhim": friend_pronouns["him"],
        "ehe": words["pronouns"][elder_gender]["he"],
        "home": home, "town": town, "place": place, "place2": place2,
        "time": time, "time2": time2, "season": rng.choice(words["seasons"]),
        "weather": rng.choice(words["weathers"]), "food": rng.choice(words["foods"]),
        "color": rng.choice(words["colors"]), "object": rng.choice(words["objects"]),
        "good": rng.choice(words["feelings_good"]), "bad": rng.choice(words["feelings_bad"]),
        "sound": rng.choice(words["sounds"]), "cause": cause, "cause_detail": cause_detail,
        "contest": contest, "practice": practice, "entry": entry,
        "project": project, "materials": materials,
    }
    fields["He"], fields["His"] = fields["he"].capitalize(), fields["his"].capitalize()
    return fields


def _expand(slots: list[Any], rng: random.Random) -> list[str]:
    """Pick the templates of one story: every plain slot once, optional ones by chance, repeats 1..k times."""
    templates: list[str] = []
    for slot in slots:
        if isinstance(slot, list):
            templates.append(rng.choice(slot))
        elif "optional" in slot:
            if rng.random() < slot["optional"]:
                templates.append(rng.choice(slot["t"]))
        else:
            low, high = slot["repeat"]
            templates += rng.sample(slot["t"], min(rng.randint(low, high), len(slot["t"])))
    return templates


_ARTICLE_BEFORE_VOWEL = re.compile(r"\b([Aa]) (?=[aeiou])")


def _polish(sentence: str) -> str:
    """"a old owl" -> "an old owl" (the word lists have no vowel-initial word that takes "a"); capitalise."""
    sentence = _ARTICLE_BEFORE_VOWEL.sub(r"\1n ", sentence)
    first = 1 if sentence.startswith('"') else 0
    return sentence[:first] + sentence[first:first + 1].upper() + sentence[first + 1:]


def _attempt(seed: int, index: int, attempt: int) -> Story:
    words = _words()
    # A string seed is hashed with SHA-512 by `random`, so streams for nearby (seed, index) pairs are unrelated.
    rng = random.Random(f"birdie-story:{seed}:{index}:{attempt}")
    fields = _Slots(_cast(rng, words), rng, {
        "spot": words["spots"], "find": words["finds"], "sound": words["sounds"], "setback": words["setbacks"],
    })
    # Most stories follow one plot; some chain two or three (one cast), which spreads lengths over 50..400 words.
    chained = rng.sample(plots(), rng.choices((1, 2, 3), weights=(6, 3, 1))[0])
    templates = _expand(words["intro"], rng)
    for number, plot in enumerate(chained):
        if number:
            templates.append(rng.choice(words["transitions"]))
        templates += _expand(words["arcs"][plot], rng)
    templates += _expand(words["epilogue"], rng)
    return Story(plot="+".join(chained), events=tuple(_polish(t.format_map(fields)) for t in templates))


def generate_story(seed: int, index: int) -> Story:
    """The story at ``index`` of the corpus with ``seed``: deterministic, 50..400 words.

    Raises:
        ValueError: ``index`` is negative.
    """
    if index < 0:
        raise ValueError(f"generate_story: index={index} must be >= 0")
    for attempt in range(_MAX_ATTEMPTS):
        story = _attempt(seed, index, attempt)
        if MIN_WORDS <= story.num_words <= MAX_WORDS:
            return story
    raise RuntimeError(f"generate_story: no story of {MIN_WORDS}..{MAX_WORDS} words for seed={seed} index={index}")


def split_of(text: str) -> str:
    """The split a story text belongs to (stable across runs and machines)."""
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()
    return "validation" if int.from_bytes(digest, "little") % VALIDATION_EVERY == 0 else "train"


def stories(seed: int, split: str, start: int = 0, step: int = 1) -> Iterator[Story]:
    """Stories of ``split`` among the indices ``start, start + step, ...``, without end."""
    check_split(split)
    for index in itertools.count(start, step):
        story = generate_story(seed, index)
        if split_of(story.text) == split:
            yield story


def story_texts(seed: int, split: str) -> Iterator[str]:
    """The texts of ``split``'s stories in index order, without end (slice with ``itertools.islice``)."""
    return (story.text for story in stories(seed, split))


def synthetic_stories(split: str, worker_id: int, num_workers: int, rng_seed: int) -> Iterator[dict[str, str]]:
    """Pipeline source in the seeds' contract: worker ``worker_id`` of ``num_workers`` yields ``{"text": story}``.

    The stream is unlimited; ``rng_seed`` picks the corpus.
    """
    if num_workers < 1 or not 0 <= worker_id < num_workers:
        raise ValueError(f"synthetic_stories: need 0 <= worker_id ({worker_id}) < num_workers ({num_workers})")
    return ({"text": story.text} for story in stories(rng_seed, split, start=worker_id, step=num_workers))
