"""The lm-evaluation-harness bridge: a scoring core, an in-process ``birdie`` lm-eval model, an OpenAI-compatible
server and an offline task pack. See ``docs/harness.md``.

Heavy modules load on first use: ``from birdie.harness import Scorer, evaluate, make_server``.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "Scorer": "birdie.harness.core",
    "ScorerConfig": "birdie.harness.core",
    "ContinuationScore": "birdie.harness.core",
    "Generation": "birdie.harness.core",
    "ScoringModel": "birdie.harness.models",
    "BirdieScoringModel": "birdie.harness.models",
    "UserModuleModel": "birdie.harness.models",
    "load_scoring_model": "birdie.harness.models",
    "BirdieLM": "birdie.harness.lm",
    "evaluate": "birdie.harness.evaluation",
    "make_server": "birdie.harness.server",
    "serve_in_thread": "birdie.harness.server",
    "ServerLimits": "birdie.harness.endpoint",
    "TASKS_DIR": "birdie.harness.tasks",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'birdie.harness' has no attribute {name!r}")


__all__ = sorted(_LAZY)
