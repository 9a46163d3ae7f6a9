"""birdie: reward-driven automated curricula for language-model pretraining.

``from birdie import Birdie`` gives the curriculum + pipeline API; ``birdie.load(path)`` loads an exported model and
its tokenizer. Both are imported lazily so ``import birdie`` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "Birdie": "birdie.curriculum.api",
    "load": "birdie.train.export",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'birdie' has no attribute {name!r}")


__all__ = ["Birdie", "load", "__version__"]
