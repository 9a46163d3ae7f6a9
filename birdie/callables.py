"""User code named on the command line: ``'package.module:function'`` -> the function.

Data sources (``--data.callable``), PPO rewards (``--reward.callable``) and the experiment's phone books are all
named this way; the error names the option so that a user knows which flag to fix.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable

from birdie.checks import ConfigError


def import_callable(spec: str, field: str = "data.callable") -> Callable[..., Any]:
    """The callable ``spec`` names (``'package.module:function'``); a :class:`ConfigError` naming the option
    ``field`` when it is malformed, cannot be imported or is not callable."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ConfigError(f"{field}={spec!r} must look like 'package.module:function'")
    try:
        target = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as error:
        raise ConfigError(f"{field}={spec!r} cannot be imported: {error}") from None
    if not callable(target):
        raise ConfigError(f"{field}={spec!r} is not callable")
    return target
