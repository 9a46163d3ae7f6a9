"""Python entry point: run lm-eval's ``simple_evaluate`` on a birdie checkpoint or a user module."""

from __future__ import annotations

from typing import Any, Sequence

from birdie.harness.tasks import TASKS_DIR


def task_paths() -> list[str]:
    """lm-eval task directories birdie adds: the offline pack, and one YAML per registered evaluation task
    (:func:`birdie.eval.lm_eval_tasks.tasks_dir`: ``birdie_phonebook``, ``birdie_story_infilling``, ...)."""
    from birdie.eval.lm_eval_tasks import tasks_dir

    return [TASKS_DIR, tasks_dir()]


def evaluate(
    model: Any,
    tasks: Sequence[str] = ("birdie_smoke",),
    include_path: str | Sequence[str] | None = None,
    builtin_tasks: bool = True,
    **kwargs: Any,
) -> dict[str, Any]:
    """Evaluate ``model`` with lm-eval and return ``simple_evaluate``'s results dict.

    Args:
        model: a model-args string (``"checkpoint=DIR"`` or ``"module=pkg.mod,tag=T"``), a dict of the same
            arguments, a :class:`~birdie.harness.adapters.ScoringModel`, or a :class:`~birdie.harness.lm.BirdieLM`.
        tasks: task or group names; birdie's offline pack (``birdie_smoke`` and its tasks) and the registered
            evaluation tasks (``birdie_phonebook``, ``birdie_story_infilling``, ``birdie_squad_v2``, ...) are always
            available.
        include_path: further task directories.
        builtin_tasks: also index lm-eval's built-in tasks (about 5 s; they need the hub for their data).
        kwargs: passed to ``lm_eval.simple_evaluate`` (``limit``, ``log_samples``, ``batch_size``, ...);
            ``metadata`` goes to the tasks, as lm-eval's ``--metadata`` (e.g. ``{"birdie_squad_v2": {"data": F}}``),
            with the model's tokenizer added for the registered evaluation tasks.
    """
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    from birdie.harness.lm import BirdieLM
    from birdie.harness.adapters import ScoringModel, parse_model_args

    if isinstance(model, str):
        model = parse_model_args(model)
    if isinstance(model, dict):
        model = BirdieLM(**model)
    elif isinstance(model, ScoringModel):
        model = BirdieLM(model=model, batch_size=kwargs.pop("batch_size", 16))
    if not isinstance(model, BirdieLM):
        raise TypeError(f"model must be model args, a ScoringModel or a BirdieLM; got {type(model).__name__}")
    extra = [include_path] if isinstance(include_path, str) else list(include_path or [])
    metadata = {"tokenizer": model.tokenizer, **kwargs.pop("metadata", {})}
    manager = TaskManager(include_path=[*task_paths(), *extra], include_defaults=builtin_tasks, metadata=metadata)
    return simple_evaluate(model=model, tasks=list(tasks), task_manager=manager, **kwargs)
