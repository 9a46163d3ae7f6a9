"""``birdie-lm-eval``: lm-eval's own command line with the ``birdie`` model registered.

Every lm-eval flag works (``birdie-lm-eval run --model birdie --model_args checkpoint=DIR --tasks ...``). Every task
index this process builds also holds birdie's offline task pack and the registered evaluation tasks
(:func:`birdie.harness.evaluation.task_paths`), beside any ``--include_path`` of yours, so ``--tasks birdie_smoke``
or ``--tasks birdie_story_infilling`` works from any directory. Results are filed under the checkpoint's directory
(or ``module:tag``) instead of lm-eval's random name.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Sequence


def main(argv: Sequence[str] | None = None) -> None:
    """Run lm-eval's CLI on ``argv`` (default ``sys.argv[1:]``)."""
    import birdie.harness.client  # noqa: F401  -- registers --model birdie-completions
    import birdie.harness.lm  # noqa: F401  -- registers --model birdie
    from lm_eval.__main__ import cli_evaluate

    _name_results_after_the_model()
    _index_birdie_tasks()
    sys.argv = ["birdie-lm-eval", *(sys.argv[1:] if argv is None else argv)]
    cli_evaluate()


def _index_birdie_tasks() -> None:
    """Every ``TaskManager`` lm-eval's CLI builds in this process (``run``, ``ls``, ``validate``) also indexes
    birdie's task paths, ahead of the user's ``--include_path`` (a later path overrides an earlier one)."""
    import lm_eval.tasks

    from birdie.harness.evaluation import task_paths

    base = lm_eval.tasks.TaskManager
    if getattr(base, "birdie", False):
        return

    class BirdieTaskManager(base):  # type: ignore[misc, valid-type]
        birdie = True

        def __init__(self, *args: Any, include_path: Any = None, **kwargs: Any) -> None:
            extra = [include_path] if isinstance(include_path, (str, Path)) else list(include_path or [])
            super().__init__(*args, include_path=[*task_paths(), *extra], **kwargs)

    lm_eval.tasks.TaskManager = BirdieTaskManager


def _name_results_after_the_model() -> None:
    """lm-eval names the output folder after the ``pretrained``/``model``/``path`` model argument and otherwise
    after a random id; teach this process's lm-eval birdie's ``checkpoint``/``module`` arguments first."""
    from lm_eval.loggers.evaluation_tracker import GeneralConfigTracker

    from birdie.harness.adapters import model_name, parse_model_args

    original = GeneralConfigTracker._get_model_name
    if getattr(original, "birdie", False):
        return

    def name(model_args: Any) -> str | None:
        try:
            args = parse_model_args(model_args) if isinstance(model_args, str) else dict(model_args or {})
        except ValueError:  # lm-eval reports malformed model args itself
            return original(model_args)
        if args.get("checkpoint") or args.get("module"):
            return model_name(args.get("checkpoint"), args.get("module"), args.get("tag", ""))
        return original(model_args)

    name.birdie = True  # type: ignore[attr-defined]
    GeneralConfigTracker._get_model_name = staticmethod(name)


if __name__ == "__main__":
    main()
