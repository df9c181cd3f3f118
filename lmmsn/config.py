"""Typed configuration: dataclass schemas, YAML files and `key=value` overrides.

A config is a (possibly nested) dataclass. Its fields are the schema: every
YAML key and every override must name a field, values are checked against the
field's annotation, and the dataclass' own `__post_init__` validates the
values. Unknown keys are errors that name the file and the key, with the
closest known keys as suggestions.

Written here rather than taken from OmegaConf/jsonargparse because it needs
little code, the errors name the YAML file and the exact dotted key, and the
schemas use plain Python 3.10 annotations (`int | None`, `Literal[...]`,
`tuple[int, ...]`) that those libraries handle partially.

    @dataclass
    class TrainConfig:
        lr: float = 1e-4
        "Peak learning rate."

    cfg = load_config(TrainConfig, "recipes/configs/x.yaml", ["lr=3e-4"])
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A config file or override does not match its schema."""


def _where(source: str | None, key: str) -> str:
    return f"{source}: '{key}'" if source else f"'{key}'"


def _check_value(value: Any, annotation: Any, key: str, source: str | None) -> Any:
    """Return `value` converted to `annotation`, or raise ConfigError."""
    origin = get_origin(annotation)
    if annotation is Any:
        return value
    if origin in (Union, types.UnionType):
        errors = []
        for option in get_args(annotation):
            try:
                return _check_value(value, option, key, source)
            except ConfigError as exc:
                errors.append((option, exc))
        for option, exc in errors:
            # A mapping for an optional section: its own error (e.g. an unknown key inside) is the one to report.
            if dataclasses.is_dataclass(option) and isinstance(value, Mapping):
                raise exc
        raise ConfigError(f"{_where(source, key)} = {value!r} matches none of {annotation}")
    if annotation is type(None):
        if value is None:
            return None
        raise ConfigError(f"{_where(source, key)} must be null, got {value!r}")
    if origin is Literal:
        if value in get_args(annotation):
            return value
        raise ConfigError(
            f"{_where(source, key)} = {value!r} is not one of {list(get_args(annotation))}"
        )
    if dataclasses.is_dataclass(annotation):
        if isinstance(value, annotation):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(f"{_where(source, key)} must be a mapping, got {value!r}")
        return from_dict(annotation, value, source=source, prefix=f"{key}.")
    if origin in (list, tuple, Sequence) or annotation in (list, tuple):
        if isinstance(value, str) or not isinstance(value, Sequence):
            raise ConfigError(f"{_where(source, key)} must be a list, got {value!r}")
        args = get_args(annotation)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(f"{_where(source, key)} needs {len(args)} items, got {value!r}")
            items = [_check_value(v, a, f"{key}[{i}]", source) for i, (v, a) in enumerate(zip(value, args, strict=True))]
        else:
            item_type = args[0] if args else Any
            items = [_check_value(v, item_type, f"{key}[{i}]", source) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{_where(source, key)} must be a mapping, got {value!r}")
        key_type, value_type = get_args(annotation) or (Any, Any)
        return {
            _check_value(k, key_type, key, source): _check_value(v, value_type, f"{key}.{k}", source)
            for k, v in value.items()
        }
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if annotation is float and isinstance(value, float) and not math.isfinite(value):
        # NaN passes every `x <= 0` check of a __post_init__; no config field means "infinite" by inf.
        raise ConfigError(f"{_where(source, key)} must be a finite number, got {value!r}")
    if annotation is Path and isinstance(value, str):
        return Path(value)
    if annotation in (int, float, str, bool):
        # bool is a subclass of int: `True` is not an acceptable learning rate.
        if isinstance(value, annotation) and not (annotation is not bool and isinstance(value, bool)):
            return value
        raise ConfigError(
            f"{_where(source, key)} must be {annotation.__name__}, got {type(value).__name__} {value!r}"
        )
    raise ConfigError(f"{_where(source, key)}: unsupported annotation {annotation}")


def from_dict(cls: type[T], data: Mapping[str, Any], *, source: str | None = None, prefix: str = "") -> T:
    """Build dataclass `cls` from a nested mapping, rejecting unknown keys.

    Args:
        cls: the dataclass schema.
        data: nested mapping (e.g. parsed YAML).
        source: file name used in error messages.
        prefix: dotted prefix of `data` inside the whole config (for errors).

    Returns:
        An instance of `cls` (its `__post_init__` has run).
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source or 'config'}: expected a mapping at '{prefix or '<top>'}'")
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kwargs = {}
    for key, value in data.items():
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=3)
            hint = f"; did you mean {', '.join(prefix + c for c in close)}?" if close else ""
            raise ConfigError(
                f"{_where(source, prefix + str(key))} is not a field of {cls.__name__} "
                f"(fields: {', '.join(fields)}){hint}"
            )
        kwargs[key] = _check_value(value, hints[key], prefix + key, source)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"{source or 'config'}: invalid {cls.__name__} at '{prefix or '<top>'}': {exc}") from exc


def to_dict(config: Any) -> dict[str, Any]:
    """A dataclass config as plain YAML-serialisable Python values."""

    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, Path):
            return str(value)
        return value

    return plain(config)


def _set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    node = data
    *parents, leaf = dotted.split(".")
    for part in parents:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"override '{dotted}': '{part}' is not a section")
        node = child
    node[leaf] = value


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply `key.sub=value` strings to a nested dict; values are parsed as YAML."""
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r} is not of the form key=value")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as exc:
            raise ConfigError(f"override {item!r}: value is not valid YAML: {exc}") from exc
        _set_dotted(data, key.strip(), value)
    return data


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; an empty file is an empty mapping."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc.strerror or exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping, got {type(data).__name__}")
    return data


def load_config(cls: type[T], path: str | Path | None = None, overrides: Sequence[str] = ()) -> T:
    """Load a dataclass config from an optional YAML file plus overrides.

    Args:
        cls: the dataclass schema.
        path: YAML file (None: start from the schema's defaults).
        overrides: `key=value` strings, dotted keys for nested sections.

    Returns:
        The validated config.
    """
    data = read_yaml(path) if path is not None else {}
    apply_overrides(data, overrides)
    source = str(path) if path is not None else "overrides"
    return from_dict(cls, data, source=source)


def save_config(config: Any, path: str | Path) -> None:
    """Write a dataclass config as YAML (readable back with `load_config`)."""
    Path(path).write_text(yaml.safe_dump(to_dict(config), sort_keys=False), encoding="utf-8")


__all__ = [
    "ConfigError",
    "apply_overrides",
    "from_dict",
    "load_config",
    "read_yaml",
    "save_config",
    "to_dict",
]
