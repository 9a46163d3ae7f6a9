"""The one validation idiom of config dataclasses: ``check(self, "field", ok, "requirement")``.

Every config dataclass (training sections, the curriculum's schedule / agent / reward model, the pipeline, the
model architecture) validates its fields in ``__post_init__`` with :func:`check`, which raises a
:class:`ConfigError` reading ``Class.field=value requirement``. When the training config builds a section at a
dotted path (``curriculum.schedule``), :mod:`birdie.train.config_io` re-words the same error as
``curriculum.schedule.field=value requirement``. :func:`option` declares a field with the help text that
``birdie train --help`` shows.
"""

from __future__ import annotations

from dataclasses import field
from typing import Any

import numpy as np


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the field, its value and the requirement.

    ``field``, ``value`` and ``requirement`` are set when :func:`check` raised it (so that a caller that knows the
    field's dotted path can name it); None otherwise.
    """

    def __init__(self, message: str, field: str | None = None, value: Any = None,
                 requirement: str | None = None) -> None:
        super().__init__(message)
        self.field, self.value, self.requirement = field, value, requirement

    def at(self, path: str) -> "ConfigError":
        """The same error naming the field as ``path.field`` (unchanged when it carries no field)."""
        if self.field is None:
            return self
        return ConfigError(f"{path}.{self.field}={self.value!r} {self.requirement}")


def check(config: object, field_name: str, ok: bool, requirement: str) -> None:
    """Raise a :class:`ConfigError` naming the config class, the field, its value and the requirement when ``ok`` is
    false."""
    if not ok:
        value = getattr(config, field_name, None)
        raise ConfigError(f"{type(config).__name__}.{field_name}={value!r} {requirement}", field_name, value,
                          requirement)


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


def is_int(value: Any) -> bool:
    """True for an integer that is not a bool."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def option(default: Any, help: str) -> Any:
    """A dataclass field with a default (a value, or a factory: a callable such as ``list`` or a dataclass) and
    the help text ``birdie train --help`` shows."""
    if callable(default):
        return field(default_factory=default, metadata={"help": help})
    return field(default=default, metadata={"help": help})
