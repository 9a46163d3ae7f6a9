"""Lazy package exports: a package names its public objects and the modules that define them, and each module is
imported only when one of its names is first used (so ``import birdie`` does not pull in torch). Also the one switch
for the optional numba kernels."""

from __future__ import annotations

import importlib
import os
from typing import Any, Callable, Mapping


def lazy_getattr(package: str, exports: Mapping[str, str]) -> Callable[[str], Any]:
    """A module-level ``__getattr__`` for ``package`` that resolves ``exports`` (name -> defining module)."""

    def __getattr__(name: str) -> Any:
        if name in exports:
            return getattr(importlib.import_module(exports[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__


def numba_disabled() -> bool:
    """True when ``BIRDIE_NO_NUMBA`` is set (to anything but ``0``): every numba kernel (objectives, reward-model
    fit) then gives way to its numpy/torch fallback."""
    return os.environ.get("BIRDIE_NO_NUMBA", "") not in ("", "0")
