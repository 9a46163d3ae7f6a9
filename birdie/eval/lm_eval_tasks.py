"""Every registered evaluation task as an lm-evaluation-harness task (``birdie_phonebook``,
``birdie_story_infilling``, ``birdie_squad_v2``, and any task a user registers), from the same class.

:func:`tasks_dir` writes one two-line YAML per registered task (``task: birdie_NAME`` and
``class: !function birdie.eval.lm_eval_tasks.PaperTask``) into a directory of this process, generated from the
registry, so no task has a hand-written YAML; ``birdie-lm-eval`` and :func:`birdie.harness.evaluate` add it to
lm-eval's task paths. :class:`PaperTask` looks its task up by name and asks lm-eval for the same requests
``birdie eval`` scores:

* multiple_choice: one loglikelihood request ``(prompt, option)`` per option; the option with the lowest
  log-likelihood per token of the model's tokenizer is chosen, as ``birdie eval`` chooses it.
* generate_until: one greedy request with the task's token budget and no stop string but EOS; the prediction is
  the task's :meth:`~birdie.eval.registry.EvalTask.prediction` of the text.

Metrics are the task's own ``score`` over the scored items (lm-eval's ``--limit`` scores the first N). The
task's options (``birdie eval TASK --help``) come from ``--metadata '{"birdie_TASK": {"option": value}}'``; the
tokenizer (for budgets and per-token normalisation) from the ``checkpoint`` model argument, or a ``tokenizer``
metadata entry (a tokenizer, a ``tokenizer.json`` path or ``"bytes"``) for other models. With ``scoring=prefix``
(a Birdie-trained model's ``auto``) the in-process ``birdie`` model scores these requests as
``birdie eval --prompt-mode prefix`` does.
"""

from __future__ import annotations

import argparse
import atexit
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

from lm_eval.api.instance import Instance
from lm_eval.api.task import ConfigurableTask

from birdie.eval.registry import EvalTask, lm_eval_name
from birdie.eval.tasks import tasks

_DIRECTORY: list[Path] = []


def tasks_dir() -> str:
    """A directory holding one lm-eval YAML per registered task (rewritten on every call, so tasks registered
    since the last call are included); pass it to ``TaskManager(include_path=...)``."""
    if not _DIRECTORY:
        _DIRECTORY.append(Path(tempfile.mkdtemp(prefix="birdie-lm-eval-tasks-")))
        atexit.register(shutil.rmtree, _DIRECTORY[0], True)
    directory = _DIRECTORY[0]
    for stale in directory.glob("*.yaml"):
        stale.unlink()
    for name in tasks():
        (directory / f"{lm_eval_name(name)}.yaml").write_text(
            f"task: {lm_eval_name(name)}\nclass: !function {__name__}.PaperTask\n", encoding="utf-8")
    return str(directory)


class _Parser(argparse.ArgumentParser):
    """Option errors raise ValueError (lm-eval reports it) instead of exiting the process."""

    def error(self, message: str) -> Any:
        raise ValueError(message)


def task_options(task: EvalTask, values: dict[str, Any]) -> argparse.Namespace:
    """``task``'s options (its ``birdie eval`` defaults) with ``values`` (option name -> value) applied."""
    parser = _Parser(prog=lm_eval_name(task.name), add_help=False)
    task.add_arguments(parser)
    argv = []
    for key, value in values.items():
        argv += [f"--{key.replace('_', '-')}", ",".join(map(str, value)) if isinstance(value, list) else str(value)]
    try:
        return parser.parse_args(argv)
    except ValueError as error:
        raise ValueError(f"lm-eval task {lm_eval_name(task.name)}: {error}; give the task's options (birdie eval "
                         f"{task.name} --help) as --metadata '{{\"{lm_eval_name(task.name)}\": {{\"OPTION\": "
                         f"VALUE}}}}'") from None


def _tokenizer(metadata: dict[str, Any], name: str) -> Any:
    from birdie.tokenizers import as_tokenizer, load_tokenizer

    if metadata.get("tokenizer") is not None:
        given = metadata["tokenizer"]
        return load_tokenizer(given) if isinstance(given, (str, dict)) else as_tokenizer(given)
    if metadata.get("checkpoint"):
        directory = Path(metadata["checkpoint"])
        return load_tokenizer(directory if (directory / "tokenizer.json").is_file() else directory / "export")
    raise ValueError(f"lm-eval task {name} needs the model's tokenizer (token budgets, per-token loss): give "
                     "checkpoint=DIR in --model_args, or --metadata '{\"tokenizer\": \"DIR/tokenizer.json\"}'")


class PaperTask(ConfigurableTask):
    """A registered :class:`~birdie.eval.registry.EvalTask` as an lm-eval task (see the module docstring).

    Args:
        config: lm-eval's task config: ``task`` (``birdie_NAME``) and ``metadata`` (model args and ``--metadata``).
    """

    def __init__(self, config: dict[str, Any] | None = None, **_: Any) -> None:
        import datasets

        config = dict(config or {})
        name = config.get("task", "")
        by_name = {lm_eval_name(n): task for n, task in tasks().items()}
        if name not in by_name:
            raise ValueError(f"no registered birdie evaluation task is called {name!r}; known: {sorted(by_name)}")
        self.birdie_task = task = by_name[name]
        metadata = dict(config.get("metadata") or {})
        self.options = task_options(task, dict(metadata.pop(name, None) or {}))
        self.tokenizer = _tokenizer(metadata, name)
        self.items = task.items(self.options)
        rows = [{"index": i, "prompt": task.prompt(item), "target": str(item.get("answer", ""))}
                for i, item in enumerate(self.items)]
        super().__init__(config={
            "task": name,
            "custom_dataset": lambda **_: {"test": datasets.Dataset.from_list(rows)},
            "test_split": "test",
            "output_type": task.request_type,
            "doc_to_text": "prompt",
            "doc_to_target": "target",
            "target_delimiter": "",
            "generation_kwargs": {"until": [], "do_sample": False, "temperature": 0.0},  # per item: construct_requests
            "process_results": self._process_results,
            "metric_list": [{"metric": metric, "aggregation": self._aggregation(metric), "higher_is_better": True}
                            for metric in task.metrics],
            "metadata": {"version": 1, "options": {k: str(v) for k, v in vars(self.options).items()}},
        })

    def construct_requests(self, doc: dict[str, Any], ctx: str, **kwargs: Any) -> list[Instance]:
        kwargs.pop("apply_chat_template", None)
        kwargs.pop("chat_template", None)
        item = self.items[doc["index"]]
        if self.birdie_task.request_type == "multiple_choice":
            return [Instance(request_type="loglikelihood", doc=doc, arguments=(ctx, choice), idx=i, **kwargs)
                    for i, choice in enumerate(self.birdie_task.choices(item))]
        budget = self.birdie_task.max_new_tokens(item, self.tokenizer, self.options)
        arguments = {"until": [], "max_gen_toks": budget, "do_sample": False, "temperature": 0.0}
        return [Instance(request_type="generate_until", doc=doc, arguments=(ctx, arguments), idx=0, **kwargs)]

    def _process_results(self, doc: dict[str, Any], results: list[Any]) -> dict[str, Any]:
        """Every metric gets ``(item index, prediction)``; the aggregation scores them all together."""
        item = self.items[doc["index"]]
        if self.birdie_task.request_type == "multiple_choice":
            lengths = [len(self.tokenizer.encode(choice)) for choice in self.birdie_task.choices(item)]
            losses = [-loglikelihood / length for (loglikelihood, _), length in zip(results, lengths)]
            output: Any = min(range(len(losses)), key=losses.__getitem__)
        else:
            output = results[0]
        prediction = self.birdie_task.prediction(item, output)
        return {metric: (doc["index"], prediction) for metric in self.birdie_task.metrics}

    def _aggregation(self, metric: str) -> Callable[[list[Any]], float]:
        def aggregate(scored: list[Any]) -> float:
            items = [self.items[index] for index, _ in scored]
            return self.birdie_task.score(items, [prediction for _, prediction in scored], self.tokenizer)[metric]

        return aggregate
