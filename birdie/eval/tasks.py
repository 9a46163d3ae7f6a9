"""Every evaluation task: the Birdie paper's three (registered where they are defined) and any registered since.

* ``phonebook`` -- multi-phone-number retrieval, greedy answers, digit accuracy (:mod:`birdie.eval.phonebook`).
* ``story-infilling`` -- four-way multiple choice over story events, accuracy (:mod:`birdie.eval.story_infilling`).
* ``squad-v2`` -- SQuAD v2 answerable questions, greedy answers, contains-label/F1/EM (:mod:`birdie.eval.squad`).
"""

from __future__ import annotations

import birdie.eval.phonebook  # noqa: F401  -- each module registers its task
import birdie.eval.squad  # noqa: F401
import birdie.eval.story_infilling  # noqa: F401
from birdie.eval.registry import EvalTask, registered


def tasks() -> dict[str, EvalTask]:
    """Every registered task by name, the built-in ones included."""
    return registered()


def get_task(name: str) -> EvalTask:
    """The registered task ``name`` (``ValueError`` listing the known names otherwise)."""
    known = tasks()
    if name not in known:
        raise ValueError(f"no evaluation task {name!r}; registered: {', '.join(sorted(known))}")
    return known[name]
