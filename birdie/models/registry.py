"""The family registry: family name -> mixer class and whether its blocks carry an MLP.

Built-in families register themselves when their module is imported; :func:`get_family` imports a built-in
module on first use, so ``create("hawk-tiny")`` needs no prior import. Your own family: call
:func:`register_family` before building a model whose ``ModelConfig.family`` names it.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

from birdie.models.config import ModelConfig
from birdie.models.mixer import Mixer

#: built-in family -> the module that registers it on import
BUILTIN_FAMILIES: dict[str, str] = {
    "transformer": "birdie.models.transformer",
    "supra": "birdie.models.supra",
    "hawk": "birdie.models.hawk",
    "gated_ssm": "birdie.models.gated_ssm",
}

MixerFactory = Callable[[ModelConfig, int], Mixer]


@dataclass(frozen=True)
class Family:
    """A registered family: ``mixer(config, layer_index)`` builds one layer's mixer; ``has_mlp`` adds the
    shell's gated MLP after it in every block; ``fixed_size_state`` says its decoding state has a fixed size and
    restarts at segment boundaries (a recurrence, not a KV cache), so contexts of different lengths can be read in
    one left-padded batch (the scoring harness's fast path)."""

    name: str
    mixer: MixerFactory
    has_mlp: bool
    fixed_size_state: bool = False


_REGISTRY: dict[str, Family] = {}


def register_family(name: str, mixer: MixerFactory, *, has_mlp: bool, fixed_size_state: bool = False) -> Family:
    """Register ``mixer`` under ``name`` (see :class:`Family` for the flags). Registering the same family again is
    a no-op; another one under the same name raises."""
    family = Family(name=name, mixer=mixer, has_mlp=has_mlp, fixed_size_state=fixed_size_state)
    existing = _REGISTRY.get(name)
    if existing is not None and existing != family:
        raise ValueError(f"model family {name!r} is already registered with {existing.mixer!r}")
    _REGISTRY[name] = family
    return family


def get_family(name: str) -> Family:
    """The family registered as ``name``, importing its built-in module if needed; a clear error otherwise."""
    if name not in _REGISTRY and name in BUILTIN_FAMILIES:
        module = BUILTIN_FAMILIES[name]
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as error:
            if error.name != module:
                raise
            raise ValueError(
                f"model family {name!r} is not available: its module {module} is not installed in this birdie"
            ) from error
    if name not in _REGISTRY:
        raise ValueError(
            f"unknown model family {name!r}; available: {available_families()} "
            "(register your own with birdie.models.register_family)"
        )
    return _REGISTRY[name]


def available_families() -> list[str]:
    """Names of every family that can be built now (built-ins whose module imports, plus registered ones)."""
    for name, module in BUILTIN_FAMILIES.items():
        if name not in _REGISTRY:
            try:
                importlib.import_module(module)
            except ModuleNotFoundError as error:
                if error.name != module:
                    raise
    return sorted(_REGISTRY)
