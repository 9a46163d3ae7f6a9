"""Reading, overriding and writing :class:`~birdie.train.config.TrainConfig`, a tree of dataclasses.

Precedence: the defaults, then a YAML or TOML file (``--config``), then ``--section.field value`` flags (a nested
section's leaves are ``--section.sub.field``, e.g. ``--curriculum.schedule.warmup_steps 100``). Values from files
keep their YAML/TOML types; values from the command line are strings coerced to the field's type
(``--optimizer.betas 0.9,0.99``, ``--model.overrides '{n_layers: 2}'``, ``--checkpoint.resume none``). Every
mistake -- an unknown section or field, a value of the wrong type, a value out of range, a key of the old layout
(``objectives.*``) -- raises :class:`ConfigError` naming the dotted field.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Iterator, Literal, Mapping

import yaml

from birdie.train.config import SECTIONS, ConfigError, TrainConfig, is_section, section_fields

_UNIONS = (typing.Union, types.UnionType)
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def _hints(section: type) -> dict[str, Any]:
    return typing.get_type_hints(section)


def config_leaves(cls: type = TrainConfig, path: str = "",
                  skip: tuple[str, ...] = ()) -> Iterator[tuple[str, dataclasses.Field, Any]]:
    """Every leaf field under ``cls`` as ``(dotted name, field, type)``, sections depth first (``skip``: top-level
    fields that are not settings)."""
    hints = _hints(cls)
    for f in section_fields(cls):
        if f.name in skip:
            continue
        name = f"{path}.{f.name}" if path else f.name
        if is_section(hints[f.name]):
            yield from config_leaves(hints[f.name], name)
        else:
            yield name, f, hints[f.name]


def _describe(tp: Any) -> str:
    if tp is type(None) or tp is Any:
        return "None" if tp is type(None) else "entries"
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Literal:
        return "|".join(str(a) for a in args)
    if origin in _UNIONS:
        return " or ".join(_describe(a) for a in args)
    if origin in (list, tuple):
        return f"list of {_describe(args[0])}"
    if origin is dict:
        return "mapping"
    return getattr(tp, "__name__", str(tp))


def coerce(name: str, tp: Any, value: Any) -> Any:
    """``value`` (a string from the command line, or a YAML/TOML value) as type ``tp``; ``name`` is for errors."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return value
    if origin in _UNIONS:
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            if type(None) in args:
                return None
        for inner in (a for a in args if a is not type(None)):
            try:
                return coerce(name, inner, value)
            except ConfigError:
                continue
        raise ConfigError(f"{name}={value!r} is not a valid {_describe(tp)}")
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
        if origin is tuple:
            return tuple(coerce(name, list[args[0]], value))
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
    if "objectives" in values:
        raise ConfigError(_moved_objectives(values["objectives"]))
    unknown = sorted(set(values) - set(SECTIONS))
    if unknown:
        raise ConfigError(f"unknown config section(s) {', '.join(unknown)}; valid: {', '.join(SECTIONS)}")
    return TrainConfig(**{name: build_section(cls, values.get(name) or {}, name) for name, cls in SECTIONS.items()})


def build_section(cls: type, given: Any, path: str) -> Any:
    """Section ``cls`` at dotted ``path`` from a mapping (nested sections recursively); errors name the path."""
    if isinstance(given, cls):
        return given
    if not isinstance(given, Mapping):
        raise ConfigError(f"config section {path!r} must be a mapping of fields, got {given!r}")
    hints = _hints(cls)
    valid = [f.name for f in section_fields(cls)]
    bad = sorted(set(given) - set(valid))
    if bad:
        raise ConfigError(f"unknown field(s) {', '.join(f'{path}.{b}' for b in bad)}; valid: "
                          f"{', '.join(f'{path}.{v}' for v in valid)}")
    kwargs = {k: build_section(hints[k], v, f"{path}.{k}") if is_section(hints[k])
              else coerce(f"{path}.{k}", hints[k], v) for k, v in given.items()}
    try:
        return cls(**kwargs)
    except ConfigError as error:
        raise error.at(path) from None


def _moved_objectives(old: Any) -> str:
    """The error for the replaced ``objectives`` section: each key given and the field that replaces it."""
    moves = []
    for key, value in (old.items() if isinstance(old, Mapping) else []):
        if key == "agent_options" and isinstance(value, str):
            value = yaml.safe_load(value)
        if key == "agent_options" and isinstance(value, Mapping):
            moves += [f"objectives.agent_options.{k} -> {_new_field(k)}" for k in value]
        else:
            moves.append(f"objectives.{key} -> {_new_field(key)}")
    detail = "; ".join(moves) if moves else "objectives.FIELD -> curriculum.FIELD"
    return f"config section 'objectives' was replaced by 'curriculum': {detail} (see birdie train --help)"


def _new_field(name: str) -> str:
    """The dotted ``curriculum`` leaf called ``name`` (``schedule.warmup_steps`` for ``warmup_steps``)."""
    matches = [path for path, _, _ in config_leaves(SECTIONS["curriculum"], "curriculum")
               if path.rsplit(".", 1)[-1] == name]
    return matches[0] if matches else "no such setting (valid: the curriculum.* fields of birdie train --help)"


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
    """``base`` with ``{"section.field": value}`` / ``{"section.sub.field": value}`` overrides applied (``base`` is
    not modified)."""
    merged = _copy(base)
    for key, value in dotted.items():
        *sections, name = key.split(".")
        if not sections or not name:
            raise ConfigError(f"override {key!r} must be 'section.field' (or 'section.sub.field')")
        target = merged
        for depth, section in enumerate(sections):
            target = target.setdefault(section, {})
            if not isinstance(target, dict):
                raise ConfigError(f"override {key!r}: {'.'.join(sections[:depth + 1])} is not a section")
        target[name] = value
    return merged


def _copy(tree: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _copy(v) if isinstance(v, Mapping) else v for k, v in tree.items()}


def save_config(config: TrainConfig, path: str | Path) -> None:
    """Write the resolved config as YAML (readable back with ``--config``)."""
    Path(path).write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """Add one ``--section.field`` option per leaf field (``--section.sub.field`` in nested sections), documented
    from the field's help text, and hidden options for the old ``objectives.*`` keys (so that using one names its
    replacement instead of failing as an unknown option)."""
    add_leaf_arguments(parser, TrainConfig, TrainConfig())
    for old in ("mixture", "agent", "ratios", "agent_options"):
        parser.add_argument(f"--objectives.{old}", dest=f"objectives.{old}", default=argparse.SUPPRESS,
                            help=argparse.SUPPRESS)


def add_leaf_arguments(parser: argparse.ArgumentParser, root: type, defaults: Any, skip: tuple[str, ...] = ()) -> None:
    """One ``--dotted.leaf`` option per leaf field of the config class ``root``, grouped by section, each
    documented from the field's help text and its value in ``defaults``."""
    groups: dict[str, Any] = {}
    for name, f, tp in config_leaves(root, skip=skip):
        section = name.rsplit(".", 1)[0]
        if section not in groups:
            groups[section] = parser.add_argument_group(f"{section} (--{section}.FIELD)")
        default = _value_at(defaults, name)
        groups[section].add_argument(
            f"--{name}", dest=name, default=argparse.SUPPRESS, metavar=_metavar(tp),
            help=f"{f.metadata['help']} (default: {default!r})".replace("%", "%%"))


def _value_at(config: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        config = getattr(config, part)
    return config


def _metavar(tp: Any) -> str:
    text = _describe(tp)
    return "{" + text.replace("|", ",") + "}" if typing.get_origin(tp) is Literal else text.split(" ")[0].upper()


def dotted_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The ``--section.field`` values given on the command line."""
    return {k: v for k, v in vars(args).items() if "." in k and k.split(".", 1)[0] in {*SECTIONS, "objectives"}}


def build_sections(sections: Mapping[str, type], defaults: Mapping[str, Mapping[str, Any]],
                   values: Mapping[str, Any] | None) -> dict[str, Any]:
    """Every section of ``sections`` built from a command's ``defaults`` overlaid field by field with the nested
    ``values`` (``{section: {field: value}}``); an unknown section or a non-mapping is a :class:`ConfigError`."""
    merged: dict[str, dict[str, Any]] = {name: dict(fields) for name, fields in defaults.items()}
    for name, given in (values or {}).items():
        if name not in sections:
            raise ConfigError(f"unknown config section {name!r}; valid: {', '.join(sections)}")
        if not isinstance(given, Mapping):
            raise ConfigError(f"config section {name!r} must be a mapping of fields, got {given!r}")
        merged.setdefault(name, {}).update(given)
    return {name: build_section(cls, merged.get(name, {}), name) for name, cls in sections.items()}
