"""Field validation for config dataclasses: one error format everywhere, ``Class.field=value requirement``."""

from __future__ import annotations

import numpy as np


def check(config: object, field_name: str, ok: bool, requirement: str) -> None:
    """Raise a ValueError naming the config class, the field, its value and the requirement when ``ok`` is false."""
    if not ok:
        value = getattr(config, field_name, None)
        raise ValueError(f"{type(config).__name__}.{field_name}={value!r} {requirement}")


def check_range(config: object, field_name: str, minimum: int, maximum: int | None = None) -> None:
    """Validate an integer ``(lo, hi)`` field (a list or a single int is normalised to a tuple in place)."""
    value = getattr(config, field_name)
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = (int(value), int(value))
    if isinstance(value, list):
        value = tuple(value)
    upper = f" <= {maximum}" if maximum is not None else ""
    ok = (
        isinstance(value, tuple) and len(value) == 2
        and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value)
        and minimum <= value[0] <= value[1] and (maximum is None or value[1] <= maximum)
    )
    check(config, field_name, ok, f"must be a pair of integers (lo, hi) with {minimum} <= lo <= hi{upper}")
    object.__setattr__(config, field_name, (int(value[0]), int(value[1])))
