"""``birdie-lm-eval``: lm-eval's own command line with the ``birdie`` model registered.

Every lm-eval flag works (``birdie-lm-eval run --model birdie --model_args checkpoint=DIR --tasks ...``). When
``run``, ``ls`` or ``validate`` get no ``--include_path``, birdie's offline task pack is added, so
``--tasks birdie_smoke`` works from any directory.
"""

from __future__ import annotations

import sys
from typing import Sequence


def main(argv: Sequence[str] | None = None) -> None:
    """Run lm-eval's CLI on ``argv`` (default ``sys.argv[1:]``)."""
    import birdie.harness.lm  # noqa: F401  -- registers --model birdie
    from lm_eval.__main__ import cli_evaluate

    from birdie.harness.tasks import TASKS_DIR

    args = list(sys.argv[1:] if argv is None else argv)
    takes_tasks = args[:1] in (["run"], ["ls"], ["validate"]) or any(a in ("--model", "--tasks") for a in args)
    if takes_tasks and "--include_path" not in args and not {"-h", "--help"} & set(args):
        args += ["--include_path", TASKS_DIR]
    sys.argv = ["birdie-lm-eval", *args]
    cli_evaluate()


if __name__ == "__main__":
    main()
