"""The lm-evaluation-harness bridge: a scoring core, an in-process ``birdie`` lm-eval model, an OpenAI-compatible
server and an offline task pack. See ``docs/harness.md``.

Heavy modules load on first use: ``from birdie.harness import Scorer, evaluate, make_server``.
"""

from __future__ import annotations

from birdie.lazy import lazy_getattr

_LAZY = {
    "Scorer": "birdie.harness.core",
    "ScorerConfig": "birdie.harness.core",
    "ContinuationScore": "birdie.harness.core",
    "Generation": "birdie.harness.core",
    "ScoringModel": "birdie.harness.adapters",
    "BirdieScoringModel": "birdie.harness.adapters",
    "UserModuleModel": "birdie.harness.adapters",
    "load_scoring_model": "birdie.harness.adapters",
    "BirdieLM": "birdie.harness.lm",
    "evaluate": "birdie.harness.evaluation",
    "make_server": "birdie.harness.server",
    "serve_in_thread": "birdie.harness.server",
    "ServerLimits": "birdie.harness.endpoint",
    "TASKS_DIR": "birdie.harness.tasks",
}

__getattr__ = lazy_getattr(__name__, _LAZY)


__all__ = sorted(_LAZY)
