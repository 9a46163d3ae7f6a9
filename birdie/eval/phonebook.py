"""Multi-phone-number retrieval (Birdie Fig. 1, A.9): generator, training source and digit-accuracy scorer.

A phone book is ``"Phonebook:"`` followed by one ``First Last: XXX-XXX-XXXX`` entry per line (first group 100..999,
the others may start with 0), with unique names drawn from the US Census lists in ``data/names.json``. The model
is asked for ``k`` of the numbers at once::

    What are the phone numbers for Mary Smith, John Lee, and Ann Diaz? Find them in the phonebook below.

    Phonebook:
    Mary Smith: 487-090-9300
    ...

    What are the phone numbers for Mary Smith, John Lee, and Ann Diaz? Find them in the phonebook above.

and the answer is the numbers in query order, comma-separated (``487-090-9300, 312-555-0101, 902-004-1234``).
Layouts: ``question-context-question`` (above), ``question-context`` and ``context-question``.

``number_digits`` (default 10, the paper's format above) shortens the numbers for small models: with fewer than 10
digits a number is that many plain digits, the first 1..9 (``number_digits=4``: ``4870``).

Scoring compares the i-th comma-separated chunk of the output with the i-th number, digit by digit (a missing
digit counts wrong). Guessing digits uniformly gives about 10% digit accuracy (:func:`random_digit_accuracy`).
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import re
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator, Sequence

from birdie.checks import check
from birdie.eval import cache
from birdie.eval.registry import EvalTask, evaluate_task, register

LAYOUTS = ("question-context-question", "question-context", "context-question")
DIGITS_PER_NUMBER = 10
#: Shortest ``number_digits`` allowed (shorter numbers would repeat within a book too often to identify an entry).
MIN_NUMBER_DIGITS = 3


def random_digit_accuracy(digits: int = DIGITS_PER_NUMBER) -> float:
    """Expected digit accuracy of uniformly random digits on ``digits``-digit numbers (first digit 1..9)."""
    return (1 / 9 + (digits - 1) / 10) / digits


#: :func:`random_digit_accuracy` of the paper's 10-digit numbers.
RANDOM_DIGIT_ACCURACY = random_digit_accuracy()
_GENERATOR_VERSION = 1


@dataclass(frozen=True)
class PhonebookConfig:
    """Options of a phone-book set.

    Attributes:
        num_books: phone books (items) in the set.
        min_entries, max_entries: names per book, drawn uniformly in this range.
        num_queries: how many numbers are asked for at once; books cycle through these values, so each appears
            ``num_books / len(num_queries)`` times.
        layout: one of :data:`LAYOUTS`.
        seed: the set's seed; a set is a pure function of this config.
        number_digits: digits per phone number, :data:`MIN_NUMBER_DIGITS`..10 (10: ``XXX-XXX-XXXX``).
    """

    num_books: int = 64
    min_entries: int = 20
    max_entries: int = 40
    num_queries: tuple[int, ...] = (1, 2, 4, 8)
    layout: str = "question-context-question"
    seed: int = 0
    number_digits: int = DIGITS_PER_NUMBER
    _version: int = field(default=_GENERATOR_VERSION, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "num_queries", tuple(self.num_queries))
        check(self, "num_books", self.num_books >= 1, "must be >= 1")
        check(self, "min_entries", 1 <= self.min_entries <= self.max_entries,
              f"must be in [1, max_entries={self.max_entries}]")
        unique_names = len(_names()["first"]) * len(_names()["last"])
        check(self, "max_entries", self.max_entries <= unique_names, f"exceeds the {unique_names} unique names")
        check(self, "num_queries", bool(self.num_queries) and all(1 <= k <= self.min_entries for k in self.num_queries),
              f"must be non-empty, each in [1, min_entries={self.min_entries}] (a book cannot answer more queries "
              "than entries)")
        check(self, "layout", self.layout in LAYOUTS, f"must be one of {LAYOUTS}")
        check(self, "number_digits", MIN_NUMBER_DIGITS <= self.number_digits <= DIGITS_PER_NUMBER,
              f"must be in [{MIN_NUMBER_DIGITS}, {DIGITS_PER_NUMBER}]")

    def options(self) -> dict[str, Any]:
        """JSON-serialisable options (with the generator version) that identify the set."""
        return asdict(self)


@lru_cache(maxsize=1)
def _names() -> dict[str, list[str]]:
    return json.loads(Path(__file__).with_name("data").joinpath("names.json").read_text(encoding="utf-8"))


def _full_names(rng: random.Random, count: int) -> list[str]:
    """``count`` distinct "First Last" names: distinct indices into the first x last grid."""
    first, last = _names()["first"], _names()["last"]
    return [f"{first[i // len(last)]} {last[i % len(last)]}" for i in rng.sample(range(len(first) * len(last)), count)]


def _phone_number(rng: random.Random, digits: int) -> str:
    if digits == DIGITS_PER_NUMBER:
        return f"{rng.randint(100, 999)}-{rng.randint(0, 999):03d}-{rng.randint(0, 9999):04d}"
    return str(rng.randint(10 ** (digits - 1), 10 ** digits - 1))


def _name_list(names: Sequence[str]) -> str:
    if len(names) == 1:
        return names[0]
    if len(names) == 2:
        return f"{names[0]} and {names[1]}"
    return ", ".join(names[:-1]) + f", and {names[-1]}"


def question(names: Sequence[str], where: str) -> str:
    """The query for ``names``; ``where`` is ``"below"`` or ``"above"`` (where the book is)."""
    if len(names) == 1:
        return f"What is the phone number for {names[0]}? Find it in the phonebook {where}."
    return f"What are the phone numbers for {_name_list(names)}? Find them in the phonebook {where}."


def make_book(seed: int | str, num_entries: int, num_queries: int, layout: str,
              number_digits: int = DIGITS_PER_NUMBER) -> dict[str, Any]:
    """One phone book with its query: ``prompt``, ``answer`` and metadata (pure function of the arguments)."""
    rng = random.Random(f"birdie-phonebook:{seed}")
    names = _full_names(rng, num_entries)
    numbers = [_phone_number(rng, number_digits) for _ in names]
    book = "Phonebook:\n" + "\n".join(f"{name}: {number}" for name, number in zip(names, numbers))
    asked = rng.sample(range(num_entries), num_queries)
    asked_names = [names[i] for i in asked]
    parts = {
        "question-context-question": [question(asked_names, "below"), book, question(asked_names, "above")],
        "question-context": [question(asked_names, "below"), book],
        "context-question": [book, question(asked_names, "above")],
    }[layout]
    answer_numbers = [numbers[i] for i in asked]
    return {
        "prompt": "\n\n".join(parts),
        "answer": ", ".join(answer_numbers),
        "num_queries": num_queries,
        "num_entries": num_entries,
        "layout": layout,
        "query_names": asked_names,
        "query_numbers": answer_numbers,
    }


def generate_phonebooks(config: PhonebookConfig) -> list[dict[str, Any]]:
    """The evaluation set of ``config``: ``num_books`` items with ``id``, ``prompt``, ``answer`` and metadata."""
    items = []
    for index in range(config.num_books):
        rng = random.Random(f"birdie-phonebook-size:{config.seed}:{index}")
        item = make_book(f"eval:{config.seed}:{index}", rng.randint(config.min_entries, config.max_entries),
                         config.num_queries[index % len(config.num_queries)], config.layout, config.number_digits)
        items.append({"id": f"phonebook-{config.seed}-{index}", **item})
    return items


def phonebook_examples(
    split: str, worker_id: int, num_workers: int, rng_seed: int, min_entries: int = 5, max_entries: int = 20,
    max_queries: int = 4, layouts: Sequence[str] = LAYOUTS, number_digits: int = DIGITS_PER_NUMBER,
) -> Iterator[dict[str, Any]]:
    """Unlimited fine-tuning examples in the seeds' source contract, ``{"prefix", "target", "text"}``.

    ``prefix`` is the prompt and ``target`` the answer: with the ``supervised`` objective the pipeline packs them as
    one example (prompt bidirectional, loss on the answer), the layout ``evaluate_phonebook``'s default prompt
    format asks in (``configs/phonebook_finetune.yaml``). ``text`` joins both with a newline for text objectives. Books use their own seed namespace (``"train:..."``/``"validation:..."``), so they never coincide
    with an evaluation set's books. Worker ``w`` of ``n`` takes indices ``w, w + n, ...``.
    """
    if split not in ("train", "validation"):
        raise ValueError(f"phonebook_examples: split={split!r} must be 'train' or 'validation'")
    if num_workers < 1 or not 0 <= worker_id < num_workers:
        raise ValueError(f"phonebook_examples: need 0 <= worker_id ({worker_id}) < num_workers ({num_workers})")
    if not 1 <= max_queries <= min_entries <= max_entries:
        raise ValueError(f"phonebook_examples: need 1 <= max_queries ({max_queries}) <= min_entries "
                         f"({min_entries}) <= max_entries ({max_entries})")
    if not MIN_NUMBER_DIGITS <= number_digits <= DIGITS_PER_NUMBER:
        raise ValueError(f"phonebook_examples: number_digits={number_digits} must be in [{MIN_NUMBER_DIGITS}, "
                         f"{DIGITS_PER_NUMBER}]")
    for index in itertools.count(worker_id, num_workers):
        rng = random.Random(f"birdie-phonebook-train-shape:{rng_seed}:{split}:{index}")
        book = make_book(f"{split}:{rng_seed}:{index}", rng.randint(min_entries, max_entries),
                         rng.randint(1, max_queries), rng.choice(list(layouts)), number_digits)
        yield {"prefix": book["prompt"], "target": book["answer"], "text": book["prompt"] + "\n" + book["answer"]}


def _digits(text: str) -> str:
    return re.sub(r"\D", "", text)


def score_number(predicted_chunk: str, gold_number: str) -> int:
    """Digits of ``gold_number`` matched position by position by the digits in ``predicted_chunk``."""
    return sum(p == g for p, g in zip(_digits(predicted_chunk), _digits(gold_number)))


def score_phonebook(items: Sequence[dict[str, Any]], predictions: Sequence[str]) -> dict[str, Any]:
    """Digit accuracy and per-number exact match, overall and by number of queries.

    The i-th comma-separated chunk of a prediction is compared with the i-th requested number; the first line
    of the prediction is all that is read (generation may run on).

    Returns:
        ``{"digit_accuracy", "number_exact_match", "item_exact_match", "num_items", "random_digit_accuracy",
        "by_num_queries": {k: {same keys without the random baseline}}}``, accuracies in [0, 1]; with
        ``"by_num_entries"`` alike (keyed by names per book) when every item states its ``num_entries``.
    """
    if len(items) != len(predictions):
        raise ValueError(f"score_phonebook: {len(items)} items but {len(predictions)} predictions")
    totals: dict[Any, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for item, prediction in zip(items, predictions):
        gold = item["answer"].split(", ")
        chunks = (prediction.strip().split("\n")[0] if prediction.strip() else "").split(",")
        chunks += [""] * (len(gold) - len(chunks))
        digits = [score_number(chunk, number) for chunk, number in zip(chunks, gold)]
        exact = [_digits(chunk) == _digits(number) for chunk, number in zip(chunks, gold)]
        keys = ["all", len(gold)] + ([("entries", item["num_entries"])] if "num_entries" in item else [])
        for key in keys:
            bucket = totals[key]
            bucket["digits"] += sum(digits)
            bucket["gold_digits"] += sum(len(_digits(number)) for number in gold)
            bucket["random_digits"] += sum(random_digit_accuracy(len(_digits(number))) * len(_digits(number))
                                           for number in gold)
            bucket["numbers_exact"] += sum(exact)
            bucket["numbers"] += len(gold)
            bucket["items_exact"] += all(exact)
            bucket["items"] += 1

    def summary(bucket: dict[str, float]) -> dict[str, Any]:
        return {
            "digit_accuracy": bucket["digits"] / bucket["gold_digits"],
            "number_exact_match": bucket["numbers_exact"] / bucket["numbers"],
            "item_exact_match": bucket["items_exact"] / bucket["items"],
            "num_items": int(bucket["items"]),
        }

    if not items:
        raise ValueError("score_phonebook: no items to score")
    overall = totals.pop("all")
    result = summary(overall)
    # uniform guessing, weighted by each gold number's digit count
    result["random_digit_accuracy"] = overall["random_digits"] / overall["gold_digits"]
    result["by_num_queries"] = {k: summary(totals[k]) for k in sorted(k for k in totals if isinstance(k, int))}
    if all("num_entries" in item for item in items):
        # small books separate copying (one entry: any number of the book is right) from finding the name
        result["by_num_entries"] = {k[1]: summary(totals[k]) for k in sorted(k for k in totals if isinstance(k, tuple))}
    return result


def evaluate_phonebook(
    model: Any, tokenizer: Any, items: Sequence[dict[str, Any]], batch_size: int = 8, progress: bool = False,
    prompt_format: Any = None,
) -> tuple[dict[str, Any], list[str]]:
    """Greedy answers of ``model`` on ``items`` and their scores: ``(score_phonebook(...), predictions)``.

    Each answer may run to the gold answer's token count plus two tokens (the scorer reads the first line).
    ``prompt_format`` is a :class:`birdie.eval.scoring.PromptFormat` (default: prompt as bidirectional prefix).
    """
    return evaluate_task(Phonebook(), model, tokenizer, items, argparse.Namespace(), batch_size, progress,
                         prompt_format)


def parse_num_queries(text: str) -> tuple[int, ...]:
    """``"1,2,4,8"`` or ``"1-32"`` (a range, inclusive) or a mix: ``"1-4,8,16"``."""
    values: list[int] = []
    try:
        for part in str(text).split(","):
            low, _, high = part.partition("-")
            values += list(range(int(low), int(high or low) + 1))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--num-queries {text!r}: use numbers and ranges like '1,2,4,8' or '1-32'")
    return tuple(values)


@register
class Phonebook(EvalTask):
    """Multi-phone-number retrieval: greedy answers scored by digit accuracy, by number of queries."""

    name = "phonebook"
    help = "multi-phone-number retrieval (digit accuracy)"
    request_type = "generate_until"
    metrics = ("digit_accuracy", "number_exact_match", "item_exact_match")
    batch_size = 8
    standalone_hint = " to score, or --generate FILE to write a set"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--generate", metavar="FILE", help="write the set to FILE (JSONL + manifest); score it "
                                                                "too when --checkpoint is given")
        parser.add_argument("--data", metavar="FILE", help="score an existing JSONL set instead of generating one")
        parser.add_argument("--num-books", type=int, default=64, help="phone books in the set (paper: 1024)")
        parser.add_argument("--min-entries", type=int, default=20, help="fewest names per book (paper: 750)")
        parser.add_argument("--max-entries", type=int, default=40, help="most names per book (paper: 800)")
        parser.add_argument("--num-queries", type=parse_num_queries, default=(1, 2, 4, 8),
                            help="numbers asked for at once, e.g. '1,2,4,8' or '1-32' (paper)")
        parser.add_argument("--layout", default="question-context-question",
                            choices=["question-context-question", "question-context", "context-question"])
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--number-digits", type=int, default=DIGITS_PER_NUMBER,
                            help="digits per phone number (default 10, the paper's XXX-XXX-XXXX; 3-9: plain digits, "
                                 "for small models)")
        parser.add_argument("--cache-dir", help=f"where generated sets are cached (default {cache.DEFAULT_CACHE_DIR})")

    def _config(self, options: argparse.Namespace) -> Any:
        return PhonebookConfig(options.num_books, options.min_entries, options.max_entries, options.num_queries,
                               options.layout, options.seed, options.number_digits)

    def standalone(self, options: argparse.Namespace) -> bool:
        self._config(options)  # a bad option is reported before anything is generated
        return bool(options.generate)

    def items(self, options: argparse.Namespace) -> list[dict[str, Any]]:
        config = self._config(options)
        return cache.cached_set(options, self.name, config.options(), lambda: generate_phonebooks(config))

    def max_new_tokens(self, item: dict[str, Any], tokenizer: Any, options: argparse.Namespace) -> int:
        """The gold answer's token count plus two (the scorer reads the first line)."""
        return len(tokenizer.encode(item["answer"])) + 2

    def score(self, items: Sequence[dict[str, Any]], predictions: Sequence[Any], tokenizer: Any) -> dict[str, Any]:
        return score_phonebook(items, predictions)

    def table(self, metrics: dict[str, Any], options: argparse.Namespace) -> tuple[list[str], list[list[Any]]]:
        keys = ("num_items", "digit_accuracy", "number_exact_match", "item_exact_match")
        rows = [[k, *(m[key] for key in keys)] for k, m in metrics["by_num_queries"].items()]
        rows.append(["all", *(metrics[key] for key in keys)])
        return ["queries", "items", "digit_acc", "number_em", "item_em"], rows

    def notes(self, metrics: dict[str, Any]) -> list[str]:
        return [f"random baseline: digit accuracy {metrics['random_digit_accuracy']:.3f}"]

    def result_options(self, options: argparse.Namespace) -> dict[str, Any]:
        return {"data": options.data} if options.data else self._config(options).options()
