"""The Birdie paper's evaluation tasks, registered with :mod:`birdie.eval.registry`.

* ``phonebook`` -- multi-phone-number retrieval, greedy answers, digit accuracy (:mod:`birdie.eval.phonebook`).
* ``story-infilling`` -- four-way multiple choice over story events, accuracy (:mod:`birdie.eval.story_infilling`).
* ``squad-v2`` -- SQuAD v2 answerable questions, greedy answers, contains-label/F1/EM (:mod:`birdie.eval.squad`).

Each class holds what ``birdie eval`` and the lm-eval task ``birdie_NAME`` need: its options, items, request type,
metric and table rows.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path
from typing import Any, Callable, Sequence

from birdie.eval import cache
from birdie.eval.registry import EvalTask, register


def num_queries(text: str) -> tuple[int, ...]:
    """``"1,2,4,8"`` or ``"1-32"`` (a range, inclusive) or a mix: ``"1-4,8,16"``."""
    values: list[int] = []
    try:
        for part in str(text).split(","):
            low, _, high = part.partition("-")
            values += list(range(int(low), int(high or low) + 1))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--num-queries {text!r}: use numbers and ranges like '1,2,4,8' or '1-32'")
    return tuple(values)


def cached_set(options: argparse.Namespace, task: str, generator_options: dict[str, Any],
               build: Callable[[], list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """``--data FILE`` if given, else the generated set at ``--generate FILE`` or in the cache (reused when its
    manifest matches ``generator_options``)."""
    if options.data:
        return cache.read_jsonl(options.data)
    path = Path(options.generate) if options.generate else cache.default_set_path(task, generator_options,
                                                                                  options.cache_dir)
    items, reused = cache.cached_items(path, generator_options, build)
    print(f"{'reused' if reused else 'wrote'} {len(items)} items: {path}")
    return items


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
        parser.add_argument("--num-queries", type=num_queries, default=(1, 2, 4, 8),
                            help="numbers asked for at once, e.g. '1,2,4,8' or '1-32' (paper)")
        parser.add_argument("--layout", default="question-context-question",
                            choices=["question-context-question", "question-context", "context-question"])
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--cache-dir", help=f"where generated sets are cached (default {cache.DEFAULT_CACHE_DIR})")

    def _config(self, options: argparse.Namespace) -> Any:
        from birdie.eval.phonebook import PhonebookConfig

        return PhonebookConfig(options.num_books, options.min_entries, options.max_entries, options.num_queries,
                               options.layout, options.seed)

    def standalone(self, options: argparse.Namespace) -> bool:
        self._config(options)  # a bad option is reported before anything is generated
        return bool(options.generate)

    def items(self, options: argparse.Namespace) -> list[dict[str, Any]]:
        from birdie.eval.phonebook import generate_phonebooks

        config = self._config(options)
        return cached_set(options, self.name, config.options(), lambda: generate_phonebooks(config))

    def max_new_tokens(self, item: dict[str, Any], tokenizer: Any, options: argparse.Namespace) -> int:
        """The gold answer's token count plus two (the scorer reads the first line)."""
        return len(tokenizer.encode(item["answer"])) + 2

    def score(self, items: Sequence[dict[str, Any]], predictions: Sequence[Any], tokenizer: Any) -> dict[str, Any]:
        from birdie.eval.phonebook import score_phonebook

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
        from birdie.eval.story_infilling import InfillingConfig

        config = InfillingConfig(options.num_items, options.min_events, options.max_events, options.seed)
        recorded = {**config.options(), "corpus": options.corpus}
        if options.corpus:
            recorded["corpus_sha256"] = hashlib.sha256(Path(options.corpus).read_bytes()).hexdigest()
        return config, recorded

    def items(self, options: argparse.Namespace) -> list[dict[str, Any]]:
        from birdie.eval.story_infilling import items_from_stories, load_story_corpus, synthetic_items

        config, recorded = self._options(options)
        if options.corpus:
            return cached_set(options, self.name, recorded,
                              lambda: items_from_stories(load_story_corpus(options.corpus), config))
        return cached_set(options, self.name, recorded, lambda: synthetic_items(config))

    def score(self, items: Sequence[dict[str, Any]], predictions: Sequence[Any], tokenizer: Any) -> dict[str, Any]:
        from birdie.eval.story_infilling import score_choices

        return score_choices(items, predictions)

    def table(self, metrics: dict[str, Any], options: argparse.Namespace) -> tuple[list[str], list[list[Any]]]:
        return ["items", "accuracy", "random"], [[metrics["num_items"], metrics["accuracy"],
                                                  metrics["random_accuracy"]]]

    def result_options(self, options: argparse.Namespace) -> dict[str, Any]:
        return self._options(options)[1]


@register
class SquadV2(EvalTask):
    """SQuAD v2 answerable questions: greedy answers (first line), contains-label, F1 and exact match."""

    name = "squad-v2"
    help = "SQuAD v2 answerable questions (contains-label, F1, exact match)"
    request_type = "generate_until"
    metrics = ("contains_label", "f1", "exact_match")
    batch_size = 8
    standalone_hint = " or --predictions PRED.json"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--data", metavar="FILE", required=True,
                            help="official SQuAD v2 JSON (e.g. dev-v2.0.json)")
        parser.add_argument("--predictions", metavar="PRED.json", help="score this {question_id: answer} file "
                                                                        "instead of a checkpoint (like the official "
                                                                        "script)")
        parser.add_argument("--limit", type=int, help="score only the first N answerable questions")
        parser.add_argument("--max-new-tokens", type=int, default=128, help="greedy decoding limit (paper: 128)")
        parser.add_argument("--write-predictions", metavar="FILE", help="also write the model's predictions here")

    def standalone(self, options: argparse.Namespace) -> bool:
        return bool(options.predictions)

    def items(self, options: argparse.Namespace) -> list[dict[str, Any]]:
        from birdie.eval.squad import load_squad

        return load_squad(options.data)[: options.limit]

    def max_new_tokens(self, item: dict[str, Any], tokenizer: Any, options: argparse.Namespace) -> int:
        return options.max_new_tokens

    def prediction(self, item: dict[str, Any], output: Any) -> str:
        """The first line of the generated text, stripped."""
        return output.strip().split("\n")[0].strip()

    def given_predictions(self, options: argparse.Namespace, items: list[dict[str, Any]]) -> list[Any] | None:
        if not options.predictions:
            return None
        from birdie.eval.squad import load_predictions

        by_id = load_predictions(options.predictions)
        return [by_id.get(item["id"]) for item in items]

    def score(self, items: Sequence[dict[str, Any]], predictions: Sequence[Any], tokenizer: Any) -> dict[str, Any]:
        """Contexts are bucketed by token length when a model's tokenizer is given, else by words."""
        from birdie.eval.squad import score_squad

        length_of = (lambda text: len(tokenizer.encode(text))) if tokenizer is not None else None
        return score_squad(items, self.record(items, predictions), length_of)

    def record(self, items: Sequence[dict[str, Any]], predictions: Sequence[Any]) -> dict[str, str]:
        """The official predictions format ``{question_id: answer}`` (questions without one left out)."""
        return {item["id"]: p for item, p in zip(items, predictions) if p is not None}

    def finish(self, options: argparse.Namespace, items: Sequence[dict[str, Any]], predictions: Sequence[Any]) -> None:
        if options.write_predictions:
            Path(options.write_predictions).write_text(
                json.dumps(self.record(items, predictions), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")

    def table(self, metrics: dict[str, Any], options: argparse.Namespace) -> tuple[list[str], list[list[Any]]]:
        unit = "tokens" if options.checkpoint and not options.predictions else "words"
        keys = ("num_questions", "contains_label", "f1", "exact_match")
        rows = [[f"context {name} {unit}", *(m[key] for key in keys)] for name, m in metrics["by_context_length"].items()]
        rows.append(["all", *(metrics[key] for key in keys)])
        return ["bucket", "questions", "contains_label", "f1", "exact_match"], rows

    def notes(self, metrics: dict[str, Any]) -> list[str]:
        return [f"{metrics['missing']} questions had no prediction (scored 0)"] if metrics["missing"] else []

    def result_options(self, options: argparse.Namespace) -> dict[str, Any]:
        return {"data": options.data, "limit": options.limit, "max_new_tokens": options.max_new_tokens,
                "predictions": options.predictions}
