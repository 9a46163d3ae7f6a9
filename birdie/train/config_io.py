"""Reading, overriding and writing :class:`~birdie.train.config.TrainConfig`.

Precedence: the defaults, then a YAML or TOML file (``--config``), then ``--section.field value`` flags. Values
from files keep their YAML/TOML types; values from the command line are strings coerced to the field's type
(``--optimizer.betas 0.9,0.99``, ``--model.overrides '{n_layers: 2}'``, ``--checkpoint.resume none``). Every
mistake -- an unknown section or field, a value of the wrong type, a value out of range -- raises
:class:`ConfigError` naming the dotted field.
"""

from __future__ import annotations

import argparse
import types
import typing
from pathlib import Path
from typing import Any, Literal, Mapping

import yaml

from birdie.train.config import SECTIONS, ConfigError, Section, TrainConfig, section_fields

_UNIONS = (typing.Union, types.UnionType)
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def _hints(section: type[Section]) -> dict[str, Any]:
    return typing.get_type_hints(section)


def _describe(tp: Any) -> str:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Literal:
        return "|".join(str(a) for a in args)
    if origin in _UNIONS:
        return " or ".join(_describe(a) for a in args)
    if origin is list:
        return f"list of {_describe(args[0])}"
    if origin is dict:
        return "mapping"
    return getattr(tp, "__name__", str(tp))


def coerce(name: str, tp: Any, value: Any) -> Any:
    """``value`` (a string from the command line, or a YAML/TOML value) as type ``tp``; ``name`` is for errors."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in _UNIONS:
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            if type(None) in args:
                return None
        inner = [a for a in args if a is not type(None)]
        return coerce(name, inner[0], value)
    try:
        if origin is Literal:
            if value not in args:
                raise ValueError
            return value
        if tp is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
                return value.lower() in _TRUE
            raise ValueError
        if tp is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        if tp is float:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if tp is str:
            if not isinstance(value, (str, int, float)) or isinstance(value, bool):
                raise ValueError
            return str(value)
        if origin is list:
            items = value
            if isinstance(value, str):
                parsed = yaml.safe_load(value) if value.strip().startswith("[") else value.split(",")
                items = parsed
            if not isinstance(items, (list, tuple)):
                raise ValueError
            return [coerce(name, args[0], item.strip() if isinstance(item, str) else item) for item in items]
        if origin is dict:
            mapping = yaml.safe_load(value) if isinstance(value, str) else value
            if mapping is None:
                return {}
            if not isinstance(mapping, dict):
                raise ValueError
            return {str(k): coerce(f"{name}.{k}", args[1], v) for k, v in mapping.items()}
    except (TypeError, ValueError, yaml.YAMLError):
        raise ConfigError(f"{name}={value!r} is not a valid {_describe(tp)}") from None
    return value


def build_config(values: Mapping[str, Mapping[str, Any]] | None = None) -> TrainConfig:
    """A validated config from nested ``{section: {field: value}}`` (missing fields keep their defaults)."""
    values = dict(values or {})
    unknown = sorted(set(values) - set(SECTIONS))
    if unknown:
        raise ConfigError(f"unknown config section(s) {', '.join(unknown)}; valid: {', '.join(SECTIONS)}")
    sections = {}
    for name, cls in SECTIONS.items():
        given = values.get(name) or {}
        if not isinstance(given, Mapping):
            raise ConfigError(f"config section {name!r} must be a mapping of fields, got {given!r}")
        hints = _hints(cls)
        valid = [f.name for f in section_fields(cls)]
        bad = sorted(set(given) - set(valid))
        if bad:
            raise ConfigError(f"unknown field(s) {', '.join(f'{name}.{b}' for b in bad)}; valid: "
                              f"{', '.join(f'{name}.{v}' for v in valid)}")
        sections[name] = cls(**{k: coerce(f"{name}.{k}", hints[k], v) for k, v in given.items()})
    return TrainConfig(**sections)


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The nested mapping in a ``.yaml``/``.yml`` or ``.toml`` config file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    text = path.read_text()
    if path.suffix == ".toml":
        try:
            import tomllib
        except ImportError:  # Python 3.10
            import tomli as tomllib
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(f"config file {str(path)!r} is not valid TOML: {error}; fix the syntax there") from None
    elif path.suffix in (".yaml", ".yml", ".json"):
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as error:
            raise ConfigError(f"config file {str(path)!r}{_yaml_error_text(error)}; fix the syntax there") from None
    else:
        raise ConfigError(f"config file {str(path)!r}: use a .yaml, .yml, .json or .toml file")
    if not isinstance(data, dict):
        raise ConfigError(f"config file {str(path)!r} must hold a mapping of sections")
    return data


def _yaml_error_text(error: Exception) -> str:
    """`` line L, column C: problem`` of a YAML parse error (PyYAML's marks count from 0)."""
    mark = getattr(error, "problem_mark", None)
    where = f" line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    context = getattr(error, "context", None)
    return f"{where}: {problem}" + (f" ({context})" if context else "")


def merge(base: dict[str, Any], dotted: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``{"section.field": value}`` overrides applied (``base`` is not modified)."""
    merged = {k: dict(v) if isinstance(v, Mapping) else v for k, v in base.items()}
    for key, value in dotted.items():
        section, _, name = key.partition(".")
        if not name:
            raise ConfigError(f"override {key!r} must be 'section.field'")
        merged.setdefault(section, {})
        merged[section][name] = value
    return merged


def save_config(config: TrainConfig, path: str | Path) -> None:
    """Write the resolved config as YAML (readable back with ``--config``)."""
    Path(path).write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """Add one ``--section.field`` option per config field, documented from the field's help text."""
    for name, cls in SECTIONS.items():
        group = parser.add_argument_group(f"{name} (--{name}.FIELD)")
        hints = _hints(cls)
        defaults = cls()
        for f in section_fields(cls):
            default = getattr(defaults, f.name)
            group.add_argument(
                f"--{name}.{f.name}", dest=f"{name}.{f.name}", default=argparse.SUPPRESS, metavar=_metavar(hints[f.name]),
                help=f"{f.metadata['help']} (default: {default!r})".replace("%", "%%"))


def _metavar(tp: Any) -> str:
    text = _describe(tp)
    return "{" + text.replace("|", ",") + "}" if typing.get_origin(tp) is Literal else text.split(" ")[0].upper()


def dotted_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The ``--section.field`` values given on the command line."""
    return {k: v for k, v in vars(args).items() if "." in k and k.split(".", 1)[0] in SECTIONS}
