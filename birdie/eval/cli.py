"""``birdie eval phonebook|story-infilling|squad-v2``: generate sets, score checkpoints or prediction files.

Each sub-command prints a table and writes a JSON result file (``--out``, default ``eval_results/TASK.json``) with
the options, the metrics and the per-item predictions.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any, Iterator, Sequence

from birdie.eval import cache


def _num_queries(text: str) -> tuple[int, ...]:
    """``"1,2,4,8"`` or ``"1-32"`` (a range, inclusive) or a mix: ``"1-4,8,16"``."""
    values: list[int] = []
    try:
        for part in text.split(","):
            low, _, high = part.partition("-")
            values += list(range(int(low), int(high or low) + 1))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--num-queries {text!r}: use numbers and ranges like '1,2,4,8' or '1-32'")
    return tuple(values)


def _common(parser: argparse.ArgumentParser, batch_size: int) -> None:
    parser.add_argument("--checkpoint", help="the model to score: an export, checkpoint or run directory "
                                                "(anything birdie.load reads)")
    parser.add_argument("--batch-size", type=int, default=batch_size, help="rows scored or decoded together")
    parser.add_argument("--device", default="cpu", help="torch device for the model (cpu, cuda, cuda:1, ...)")
    parser.add_argument("--out", help="JSON result file (default: eval_results/TASK.json)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--prompt-mode", choices=["prefix", "causal"], default="prefix",
                        help="prefix (default): prompt as bidirectional prefix, as Birdie pretraining and the "
                             "supervised phone-book recipe train it; causal: NTP paradigm, then prompt and a newline "
                             "in the causal region (NTP-only models, or fine-tuned with NTP on 'prompt\\nanswer')")


def build_parser(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="task", required=True)

    phonebook = sub.add_parser("phonebook", help="multi-phone-number retrieval (digit accuracy)")
    phonebook.add_argument("--generate", metavar="FILE", help="write the set to FILE (JSONL + manifest); score it "
                                                               "too when --checkpoint is given")
    phonebook.add_argument("--data", metavar="FILE", help="score an existing JSONL set instead of generating one")
    phonebook.add_argument("--num-books", type=int, default=64, help="phone books in the set (paper: 1024)")
    phonebook.add_argument("--min-entries", type=int, default=20, help="fewest names per book (paper: 750)")
    phonebook.add_argument("--max-entries", type=int, default=40, help="most names per book (paper: 800)")
    phonebook.add_argument("--num-queries", type=_num_queries, default=(1, 2, 4, 8),
                           help="numbers asked for at once, e.g. '1,2,4,8' or '1-32' (paper)")
    phonebook.add_argument("--layout", default="question-context-question",
                           choices=["question-context-question", "question-context", "context-question"])
    phonebook.add_argument("--seed", type=int, default=0)
    phonebook.add_argument("--number-digits", type=int, default=10,
                           help="digits per phone number (default 10, the paper's XXX-XXX-XXXX; 3-9: plain digits, "
                                "for small models)")
    phonebook.add_argument("--cache-dir", help=f"where generated sets are cached (default {cache.DEFAULT_CACHE_DIR})")
    _common(phonebook, batch_size=8)
    phonebook.set_defaults(func=run_phonebook)

    infilling = sub.add_parser("story-infilling", help="four-way multiple choice over story events (accuracy)")
    infilling.add_argument("--corpus", metavar="FILE", help="stories to build items from: JSONL with 'events' or "
                                                             "'text', or text with one story per paragraph "
                                                             "(default: the synthetic corpus's validation split)")
    infilling.add_argument("--generate", metavar="FILE", help="write the items to FILE (JSONL + manifest)")
    infilling.add_argument("--data", metavar="FILE", help="score an existing JSONL item set")
    infilling.add_argument("--num-items", type=int, default=200)
    infilling.add_argument("--min-events", type=int, default=3)
    infilling.add_argument("--max-events", type=int, default=7)
    infilling.add_argument("--seed", type=int, default=0)
    infilling.add_argument("--cache-dir", help="where generated sets are cached")
    _common(infilling, batch_size=16)
    infilling.set_defaults(func=run_story_infilling)

    squad = sub.add_parser("squad-v2", help="SQuAD v2 answerable questions (contains-label, F1, exact match)")
    squad.add_argument("--data", metavar="FILE", required=True, help="official SQuAD v2 JSON (e.g. dev-v2.0.json)")
    squad.add_argument("--predictions", metavar="PRED.json", help="score this {question_id: answer} file instead "
                                                                   "of a checkpoint (like the official script)")
    squad.add_argument("--limit", type=int, help="score only the first N answerable questions")
    squad.add_argument("--max-new-tokens", type=int, default=128, help="greedy decoding limit (paper: 128)")
    squad.add_argument("--write-predictions", metavar="FILE", help="also write the model's predictions here")
    _common(squad, batch_size=8)
    squad.set_defaults(func=run_squad)


@contextlib.contextmanager
def _user_input(task: str) -> Iterator[None]:
    """Turn a bad option or an unreadable input file into ``birdie eval TASK: ...`` on stderr and exit status 2,
    as ``birdie train`` does, not a traceback (the messages already name the field or file)."""
    try:
        yield
    except (ValueError, OSError) as error:
        print(f"birdie eval {task}: {error}", file=sys.stderr)
        raise SystemExit(2) from None


def _load_model(args: argparse.Namespace) -> tuple[Any, Any]:
    import birdie

    model, tokenizer = birdie.load(args.checkpoint)
    return model.to(args.device).eval(), tokenizer


def _prompt_format(args: argparse.Namespace) -> Any:
    from birdie.eval.scoring import PromptFormat

    return PromptFormat(mode=args.prompt_mode)


def _cached_set(args: argparse.Namespace, task: str, options: dict[str, Any], build: Any) -> list[dict[str, Any]]:
    if args.data:
        return cache.read_jsonl(args.data)
    path = Path(args.generate) if args.generate else cache.default_set_path(task, options, args.cache_dir)
    items, reused = cache.cached_items(path, options, build)
    print(f"{'reused' if reused else 'wrote'} {len(items)} items: {path}")
    return items


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain aligned text table; floats print with 4 decimals."""
    cells = [[f"{value:.4f}" if isinstance(value, float) else str(value) for value in row] for row in rows]
    widths = [max(len(str(h)), *(len(row[i]) for row in cells)) for i, h in enumerate(headers)]
    lines = ["  ".join(str(h).ljust(w) for h, w in zip(headers, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


def _write_result(args: argparse.Namespace, task: str, options: dict[str, Any], metrics: dict[str, Any],
                  predictions: Any, started: float) -> None:
    path = Path(args.out or f"eval_results/{task}.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    result = {"task": task, "checkpoint": getattr(args, "checkpoint", None), "prompt_mode": args.prompt_mode,
              "options": options,
              "metrics": metrics, "seconds": round(time.time() - started, 2), "predictions": predictions}
    path.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"results: {path}")


def run_phonebook(args: argparse.Namespace) -> int:
    from birdie.eval.phonebook import PhonebookConfig, evaluate_phonebook, generate_phonebooks

    started = time.time()
    with _user_input("phonebook"):
        config = PhonebookConfig(args.num_books, args.min_entries, args.max_entries, args.num_queries, args.layout,
                                 args.seed, args.number_digits)
    if not (args.checkpoint or args.generate):
        raise SystemExit("birdie eval phonebook: give --checkpoint DIR to score, or --generate FILE to write a set")
    with _user_input("phonebook"):
        items = _cached_set(args, "phonebook", config.options(), lambda: generate_phonebooks(config))
    if not args.checkpoint:
        return 0
    model, tokenizer = _load_model(args)
    metrics, predictions = evaluate_phonebook(model, tokenizer, items, args.batch_size, not args.no_progress,
                                              _prompt_format(args))
    rows = [[k, m["num_items"], m["digit_accuracy"], m["number_exact_match"], m["item_exact_match"]]
            for k, m in metrics["by_num_queries"].items()]
    rows.append(["all", metrics["num_items"], metrics["digit_accuracy"], metrics["number_exact_match"],
                 metrics["item_exact_match"]])
    print(format_table(["queries", "items", "digit_acc", "number_em", "item_em"], rows))
    print(f"random baseline: digit accuracy {metrics['random_digit_accuracy']:.3f}")
    _write_result(args, "phonebook", config.options() if not args.data else {"data": args.data}, metrics,
                  predictions, started)
    return 0


def run_story_infilling(args: argparse.Namespace) -> int:
    from birdie.eval.story_infilling import (
        InfillingConfig, evaluate_story_infilling, items_from_stories, load_story_corpus, synthetic_items,
    )

    started = time.time()
    if not (args.checkpoint or args.generate):
        raise SystemExit("birdie eval story-infilling: give --checkpoint DIR to score, or --generate FILE")
    with _user_input("story-infilling"):
        config = InfillingConfig(args.num_items, args.min_events, args.max_events, args.seed)
        options = {**config.options(), "corpus": args.corpus}
        if args.corpus:
            corpus = Path(args.corpus)
            options["corpus_sha256"] = hashlib.sha256(corpus.read_bytes()).hexdigest()
            items = _cached_set(args, "story-infilling", options,
                                lambda: items_from_stories(load_story_corpus(corpus), config))
        else:
            items = _cached_set(args, "story-infilling", options, lambda: synthetic_items(config))
    if not args.checkpoint:
        return 0
    model, tokenizer = _load_model(args)
    metrics, choices = evaluate_story_infilling(model, tokenizer, items, args.batch_size, not args.no_progress,
                                                prompt_format=_prompt_format(args))
    print(format_table(["items", "accuracy", "random"],
                       [[metrics["num_items"], metrics["accuracy"], metrics["random_accuracy"]]]))
    _write_result(args, "story-infilling", options, metrics, choices, started)
    return 0


def run_squad(args: argparse.Namespace) -> int:
    from birdie.eval.squad import evaluate_squad, load_predictions, load_squad, score_squad

    started = time.time()
    with _user_input("squad-v2"):
        examples = load_squad(args.data)[: args.limit]
    if args.predictions:
        with _user_input("squad-v2"):
            predictions = load_predictions(args.predictions)
        metrics = score_squad(examples, predictions)
    elif args.checkpoint:
        model, tokenizer = _load_model(args)
        metrics, predictions = evaluate_squad(model, tokenizer, examples, args.max_new_tokens, args.batch_size,
                                              not args.no_progress, prompt_format=_prompt_format(args))
        if args.write_predictions:
            Path(args.write_predictions).write_text(json.dumps(predictions, indent=1, ensure_ascii=False) + "\n",
                                                    encoding="utf-8")
    else:
        raise SystemExit("birdie eval squad-v2: give --checkpoint DIR or --predictions PRED.json")
    unit = "tokens" if args.checkpoint and not args.predictions else "words"
    rows = [[f"context {name} {unit}", m["num_questions"], m["contains_label"], m["f1"], m["exact_match"]]
            for name, m in metrics["by_context_length"].items()]
    rows.append(["all", metrics["num_questions"], metrics["contains_label"], metrics["f1"], metrics["exact_match"]])
    print(format_table(["bucket", "questions", "contains_label", "f1", "exact_match"], rows))
    if metrics["missing"]:
        print(f"{metrics['missing']} questions had no prediction (scored 0)")
    options = {"data": args.data, "limit": args.limit, "max_new_tokens": args.max_new_tokens,
               "predictions": args.predictions}
    _write_result(args, "squad-v2", options, metrics, predictions, started)
    return 0
