"""birdie: reward-driven automated curricula for language-model pretraining.

``from birdie import Birdie`` gives the curriculum + pipeline API; ``birdie.load(path)`` loads an exported model and
its tokenizer. Both are imported lazily so ``import birdie`` stays light.
"""

from __future__ import annotations

from birdie.lazy import lazy_getattr

__version__ = "0.1.0"

_LAZY = {
    "Birdie": "birdie.curriculum.api",
    "BirdieConfig": "birdie.curriculum.birdie_config",
    "CurriculumConfig": "birdie.curriculum.config",
    "load": "birdie.train.export",
}

__getattr__ = lazy_getattr(__name__, _LAZY)


__all__ = ["Birdie", "BirdieConfig", "CurriculumConfig", "load", "__version__"]
