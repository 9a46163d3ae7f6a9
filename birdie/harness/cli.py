"""``birdie-lm-eval``: lm-eval's own command line with the ``birdie`` model registered.

Every lm-eval flag works (``birdie-lm-eval run --model birdie --model_args checkpoint=DIR --tasks ...``). When
``run``, ``ls`` or ``validate`` get no ``--include_path``, birdie's offline task pack is added, so
``--tasks birdie_smoke`` works from any directory. Results are filed under the checkpoint's directory (or
``module:tag``) instead of lm-eval's random name.
"""

from __future__ import annotations

import sys
from typing import Any, Sequence


def main(argv: Sequence[str] | None = None) -> None:
    """Run lm-eval's CLI on ``argv`` (default ``sys.argv[1:]``)."""
    import birdie.harness.client  # noqa: F401  -- registers --model birdie-completions
    import birdie.harness.lm  # noqa: F401  -- registers --model birdie
    from lm_eval.__main__ import cli_evaluate

    from birdie.harness.tasks import TASKS_DIR

    _name_results_after_the_model()
    args = list(sys.argv[1:] if argv is None else argv)
    takes_tasks = args[:1] in (["run"], ["ls"], ["validate"]) or any(a in ("--model", "--tasks") for a in args)
    if takes_tasks and "--include_path" not in args and not {"-h", "--help"} & set(args):
        args += ["--include_path", TASKS_DIR]
    sys.argv = ["birdie-lm-eval", *args]
    cli_evaluate()


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
