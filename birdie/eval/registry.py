"""The evaluation-task registry: each task is one small :class:`EvalTask` class, registered once.

The paper's tasks are registered beside their scorers (:mod:`birdie.eval.phonebook`,
:mod:`birdie.eval.story_infilling`, :mod:`birdie.eval.squad`); :mod:`birdie.eval.tasks` lists every task.
``birdie eval TASK`` builds its sub-commands from this registry and scores every task through
:func:`evaluate_task` (the harness core: batched option losses or batched greedy generation), and
:mod:`birdie.eval.lm_eval_tasks` exposes every registered task to lm-evaluation-harness as ``birdie_TASK`` from the
same class. A new task is a subclass plus one :func:`register` call::

    @register
    class Capitals(EvalTask):
        name = "capitals"
        help = "name the capital (exact match)"
        request_type = "generate_until"

        def items(self, options):
            return [{"prompt": "The capital of France is", "answer": "Paris"}]

        max_tokens = 8

        def score(self, items, predictions, tokenizer):
            hits = [p.strip().startswith(i["answer"]) for i, p in zip(items, predictions)]
            return {"exact_match": sum(hits) / len(hits), "num_items": len(hits)}

        def table(self, metrics, options):
            return ["items", "exact_match"], [[metrics["num_items"], metrics["exact_match"]]]
"""

from __future__ import annotations

import argparse
import re
from abc import ABC, abstractmethod
from typing import Any, ClassVar, Sequence

REQUEST_TYPES = ("multiple_choice", "generate_until")

_TASKS: dict[str, "EvalTask"] = {}


class EvalTask(ABC):
    """One evaluation task: its items, request type, metric and table rows.

    Class attributes:
        name: the sub-command (``birdie eval NAME``); lm-eval sees ``birdie_NAME`` (dashes as underscores).
        help: one line for ``birdie eval --help``.
        request_type: ``"multiple_choice"`` (the option with the lowest per-token loss after the prompt is chosen;
            a prediction is the option's index) or ``"generate_until"`` (greedy text up to
            :meth:`max_new_tokens` tokens or EOS; a prediction is :meth:`prediction` of that text).
        metrics: the headline metrics, keys of :meth:`score`'s result (lm-eval reports these).
        max_tokens: generate_until: the token budget of every answer (override :meth:`max_new_tokens` for a
            budget per item).
        batch_size: the default ``--batch-size``.
        standalone_hint: what the command does without ``--checkpoint`` (for the error when neither is given).
    """

    name: ClassVar[str]
    help: ClassVar[str]
    request_type: ClassVar[str]
    metrics: ClassVar[tuple[str, ...]]
    max_tokens: ClassVar[int] = 128
    batch_size: ClassVar[int] = 16
    standalone_hint: ClassVar[str] = ""

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Add the options that define the items (they are also lm-eval ``--metadata`` keys)."""

    @abstractmethod
    def items(self, options: argparse.Namespace) -> list[dict[str, Any]]:
        """The items to score; ``ValueError``/``OSError`` for bad options or files (shown as one line)."""

    def prompt(self, item: dict[str, Any]) -> str:
        """The text the model reads (default ``item["prompt"]``)."""
        return item["prompt"]

    def choices(self, item: dict[str, Any]) -> list[str]:
        """multiple_choice: the options, each scored as the continuation of the prompt (default ``item["options"]``)."""
        return list(item["options"])

    def max_new_tokens(self, item: dict[str, Any], tokenizer: Any, options: argparse.Namespace) -> int:
        """generate_until: the token budget of ``item``'s answer (default :attr:`max_tokens`)."""
        return self.max_tokens

    def prediction(self, item: dict[str, Any], output: Any) -> Any:
        """What is scored and stored from the model's output (the chosen index, or the generated text)."""
        return output

    @abstractmethod
    def score(self, items: Sequence[dict[str, Any]], predictions: Sequence[Any], tokenizer: Any) -> dict[str, Any]:
        """The metrics of ``predictions`` (one per item); ``tokenizer`` is None when no model was loaded."""

    @abstractmethod
    def table(self, metrics: dict[str, Any], options: argparse.Namespace) -> tuple[list[str], list[list[Any]]]:
        """``(headers, rows)`` of the table ``birdie eval`` prints."""

    def notes(self, metrics: dict[str, Any]) -> list[str]:
        """Lines printed under the table."""
        return []

    def result_options(self, options: argparse.Namespace) -> dict[str, Any]:
        """The options recorded in the result file (default: those :meth:`add_arguments` defines)."""
        parser = argparse.ArgumentParser(add_help=False)
        self.add_arguments(parser)
        return {action.dest: getattr(options, action.dest, None) for action in parser._actions}

    def standalone(self, options: argparse.Namespace) -> bool:
        """Whether the command has work to do without a model (writing a set, scoring a predictions file)."""
        return False

    def given_predictions(self, options: argparse.Namespace, items: list[dict[str, Any]]) -> list[Any] | None:
        """Predictions read from a file the user named instead of a model (None: none given)."""
        return None

    def record(self, items: Sequence[dict[str, Any]], predictions: Sequence[Any]) -> Any:
        """The predictions as the result file stores them (default: the list)."""
        return list(predictions)

    def finish(self, options: argparse.Namespace, items: Sequence[dict[str, Any]], predictions: Sequence[Any]) -> None:
        """Anything the task writes after scoring a model (e.g. a predictions file)."""


def register(task: type[EvalTask]) -> type[EvalTask]:
    """Add ``task`` (a subclass of :class:`EvalTask`) to the registry; usable as a class decorator.

    Raises:
        ValueError: the name is taken or malformed, or the request type is unknown.
    """
    name = getattr(task, "name", None)
    if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9-]*", name):
        raise ValueError(f"{task.__name__}.name={name!r}: use lower-case letters, digits and dashes, e.g. 'my-task'")
    if getattr(task, "request_type", None) not in REQUEST_TYPES:
        raise ValueError(f"{task.__name__}.request_type={getattr(task, 'request_type', None)!r}: use one of "
                         f"{REQUEST_TYPES}")
    metrics = getattr(task, "metrics", None)
    if not (isinstance(metrics, tuple) and metrics and all(isinstance(m, str) for m in metrics)):
        raise ValueError(f"{task.__name__}.metrics={metrics!r}: name the headline keys of score(), e.g. ('accuracy',)")
    if name in _TASKS and type(_TASKS[name]) is not task:
        raise ValueError(f"an evaluation task named {name!r} is already registered ({type(_TASKS[name]).__name__})")
    _TASKS[name] = task()
    return task


def unregister(name: str) -> None:
    """Remove a task (for tests and interactive sessions that re-define one)."""
    _TASKS.pop(name, None)


def registered() -> dict[str, EvalTask]:
    """The tasks registered so far, by name (:func:`birdie.eval.tasks.tasks` adds the built-in ones first)."""
    return dict(_TASKS)


def lm_eval_name(name: str) -> str:
    """The lm-eval task name of ``birdie eval`` task ``name``: ``birdie_`` + the name with underscores."""
    return "birdie_" + name.replace("-", "_")


def evaluate_task(
    task: EvalTask, model: Any, tokenizer: Any, items: Sequence[dict[str, Any]], options: argparse.Namespace,
    batch_size: int = 16, progress: bool = False, prompt_format: Any = None,
) -> tuple[dict[str, Any], list[Any]]:
    """Score ``model`` on ``items`` through the harness core; ``(task.score(...), predictions)``.

    multiple_choice: every option's length-normalised loss (:func:`birdie.eval.scoring.option_losses`), the lowest
    wins (the first on a tie). generate_until: batched greedy decoding (:func:`birdie.eval.scoring.greedy_generate`).
    ``prompt_format`` is a :class:`birdie.eval.scoring.PromptFormat` (default: the prompt as bidirectional prefix).
    """
    from birdie.eval.scoring import PromptFormat, greedy_generate, option_losses

    prompt_format = prompt_format or PromptFormat()
    prompts = [task.prompt(item) for item in items]
    if task.request_type == "multiple_choice":
        losses = option_losses(model, tokenizer, prompts, [task.choices(item) for item in items], batch_size,
                               progress, prompt_format)
        outputs: list[Any] = [min(range(len(row)), key=row.__getitem__) for row in losses]
    else:
        limits = [task.max_new_tokens(item, tokenizer, options) for item in items]
        outputs = greedy_generate(model, tokenizer, prompts, limits, batch_size, progress, prompt_format)
    predictions = [task.prediction(item, output) for item, output in zip(items, outputs)]
    return task.score(items, predictions, tokenizer), predictions
