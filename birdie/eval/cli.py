"""``birdie eval TASK``: one sub-command per registered evaluation task (:mod:`birdie.eval.registry`; the paper's
``phonebook``, ``story-infilling`` and ``squad-v2`` are in :mod:`birdie.eval.tasks`): generate sets, score
checkpoints or prediction files.

Each sub-command prints the task's table and writes a JSON result file (``--out``, default
``eval_results/TASK.json``) with the options, the metrics and the per-item predictions.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path
from typing import Any, Iterator, Sequence



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
    """One sub-command per registered task (:func:`birdie.eval.tasks.tasks`)."""
    from birdie.eval.tasks import tasks

    sub = parser.add_subparsers(dest="task", required=True)
    for name, task in tasks().items():
        task_parser = sub.add_parser(name, help=task.help)
        task.add_arguments(task_parser)
        _common(task_parser, batch_size=task.batch_size)
        task_parser.set_defaults(func=run_task)


@contextlib.contextmanager
def _user_input(task: str) -> Iterator[None]:
    """Turn a bad option or an unreadable input file into ``birdie eval TASK: ...`` on stderr and exit status 2,
    as ``birdie train`` does, not a traceback (the messages already name the field or file)."""
    try:
        yield
    except (ValueError, OSError) as error:
        print(f"birdie eval {task}: {error}", file=sys.stderr)
        raise SystemExit(2) from None


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain aligned text table; floats print with 4 decimals."""
    cells = [[f"{value:.4f}" if isinstance(value, float) else str(value) for value in row] for row in rows]
    widths = [max(len(str(h)), *(len(row[i]) for row in cells)) for i, h in enumerate(headers)]
    lines = ["  ".join(str(h).ljust(w) for h, w in zip(headers, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


def _write_result(args: argparse.Namespace, task: Any, metrics: dict[str, Any], predictions: Any,
                  started: float) -> None:
    path = Path(args.out or f"eval_results/{task.name}.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    result = {"task": task.name, "checkpoint": getattr(args, "checkpoint", None), "prompt_mode": args.prompt_mode,
              "options": task.result_options(args),
              "metrics": metrics, "seconds": round(time.time() - started, 2), "predictions": predictions}
    path.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"results: {path}")


def run_task(args: argparse.Namespace) -> int:
    """``birdie eval TASK``: build or read the items, score a checkpoint (or the task's predictions file), print
    the task's table and write the result file."""
    import birdie
    from birdie.eval.registry import evaluate_task
    from birdie.eval.tasks import get_task
    from birdie.eval.scoring import PromptFormat

    started = time.time()
    task = get_task(args.task)
    with _user_input(task.name):
        standalone = task.standalone(args)
    if not (args.checkpoint or standalone):
        raise SystemExit(f"birdie eval {task.name}: give --checkpoint DIR{task.standalone_hint}")
    with _user_input(task.name):
        items = task.items(args)
    tokenizer = None
    if args.checkpoint:
        model, tokenizer = birdie.load(args.checkpoint)
        metrics, predictions = evaluate_task(task, model.to(args.device).eval(), tokenizer, items, args,
                                             args.batch_size, not args.no_progress, PromptFormat(args.prompt_mode))
        task.finish(args, items, predictions)
    else:
        with _user_input(task.name):
            predictions = task.given_predictions(args, items)
        if predictions is None:
            return 0
        metrics = task.score(items, predictions, tokenizer)
    print(format_table(*task.table(metrics, args)))
    for line in task.notes(metrics):
        print(line)
    _write_result(args, task, metrics, task.record(items, predictions), started)
    return 0
