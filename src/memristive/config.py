"""Typed, validated configuration.

Every configurable object in memristive is a dataclass. :func:`from_dict` builds one from plain
data (parsed YAML/TOML/JSON or ``--set key=value`` overrides) and rejects unknown keys and values of
the wrong type with a :class:`ConfigError` that names the offending key. Range checks live in each
dataclass's ``__post_init__`` and use :func:`check` so that their messages look the same.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

__all__ = [
    "ConfigError",
    "check",
    "from_dict",
    "to_dict",
    "load_config",
    "apply_overrides",
    "Registry",
]


class ConfigError(ValueError):
    """A configuration key or value is wrong. The message names the key and the value."""


def check(condition: bool, key: str, value: Any, requirement: str) -> None:
    """Raise ``ConfigError`` naming ``key`` and ``value`` unless ``condition`` holds."""
    if not condition:
        raise ConfigError(f"{key}={value!r}: {requirement}")


class Registry(dict):
    """Named kinds of one family (devices, mappings, effects), filled where each kind is defined.

    A base class carrying ``__registry__ = SOME_REGISTRY`` becomes a tagged union in configs: a
    mapping ``{kind: NAME, ...}`` builds the registered class ``NAME`` (``default_kind`` when ``kind``
    is absent, if the registry has one) and a plain string ``NAME`` builds it with its defaults.
    """

    def __init__(self, family: str, default_kind: str | None = None) -> None:
        super().__init__()
        self.family = family
        self.default_kind = default_kind

    def register(self, kind: str):
        """Class decorator: ``@REGISTRY.register("name")``."""

        def deco(cls):
            if kind in self and self[kind] is not cls:
                raise ValueError(f"{self.family} kind {kind!r} is already registered by {self[kind].__name__}")
            self[kind] = cls
            return cls

        return deco

    def build(self, value: Any, key: str, base: Any = None) -> Any:
        """Instance from a registered object, a kind name or a ``{kind: ...}`` mapping."""
        if isinstance(value, tuple(self.values())):
            return value
        if isinstance(value, str):
            if value not in self:
                raise ConfigError(f"{key}={value!r}: unknown {self.family}; must be one of {sorted(self)}")
            return self[value]()
        if not isinstance(value, dict):
            raise ConfigError(f"{key}={value!r}: expected a {self.family} kind name or a mapping with a 'kind' key")
        renamed = getattr(next(iter(self.values()), None), "__renamed__", {})
        for old in sorted(set(value) & set(renamed)):
            raise ConfigError(f"{key}.{old}: this key was renamed; {renamed[old]}")
        kind = value.get("kind", self.default_kind)
        if kind is None:
            raise ConfigError(f"{key}={value!r}: a 'kind' key is needed; one of {sorted(self)}")
        if kind not in self:
            raise ConfigError(f"{key}.kind={kind!r}: unknown {self.family}; must be one of {sorted(self)}")
        cls = self[kind]
        return from_dict(cls, value, prefix=key, base=base if isinstance(base, cls) else None)


def _registry_of(tp: Any) -> Registry | None:
    return tp.__dict__.get("__registry__") if isinstance(tp, type) else None


def _is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _convert(value: Any, tp: Any, key: str, base: Any = None) -> Any:
    """Convert ``value`` to the annotated type ``tp`` or raise ConfigError.

    ``base`` is the current value of a nested dataclass field: a partial mapping is laid over it.
    """
    origin = get_origin(tp)
    if tp is Any:
        return value
    reg = _registry_of(tp)
    if reg is not None:
        return reg.build(value, key, base)
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, key, base if isinstance(base, arg if isinstance(arg, type) else ()) else None)
            except ConfigError as exc:
                errors.append(str(exc))
        if len(errors) == 1:  # Optional[X]: X's own message names the key and the problem
            raise ConfigError(errors[0])
        raise ConfigError(f"{key}={value!r}: does not match any of {tp} ({'; '.join(errors)})")
    if origin is Literal:
        allowed = get_args(tp)
        if value not in allowed:
            raise ConfigError(f"{key}={value!r}: must be one of {list(allowed)}")
        return value
    if origin in (list, tuple):
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}={value!r}: expected a list")
        args = get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(f"{key}={value!r}: expected {len(args)} items")
            return tuple(_convert(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        inner = args[0] if args else Any
        items = [_convert(v, inner, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}={value!r}: expected a mapping")
        _, vt = get_args(tp) or (Any, Any)
        return {k: _convert(v, vt, f"{key}.{k}") for k, v in value.items()}
    if _is_dataclass_type(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{key}={value!r}: expected a mapping of {tp.__name__} fields")
        return from_dict(tp, value, prefix=key, base=base)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
        raise ConfigError(f"{key}={value!r}: expected true or false")
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"{key}={value!r}: expected an integer")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        raise ConfigError(f"{key}={value!r}: expected an integer")
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"{key}={value!r}: expected a number")
        if isinstance(value, (int, float)):
            out = float(value)
        elif isinstance(value, str):
            try:
                out = float(value)
            except ValueError:
                raise ConfigError(f"{key}={value!r}: expected a number") from None
        else:
            raise ConfigError(f"{key}={value!r}: expected a number")
        if math.isnan(out):
            raise ConfigError(f"{key}={value!r}: NaN is not allowed")
        return out
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}={value!r}: expected a string")
        return value
    if isinstance(tp, type):
        if isinstance(value, tp):
            return value
        raise ConfigError(f"{key}={value!r}: expected {tp.__name__}")
    return value


def _field_default(f: dataclasses.Field) -> Any:
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return None if f.default is dataclasses.MISSING else f.default


def from_dict(cls: type, data: dict | None, prefix: str = "", base: Any = None) -> Any:
    """Build dataclass ``cls`` from ``data``, rejecting unknown keys and wrong types.

    Keys missing from ``data`` keep the value they have in ``base`` (an instance of ``cls``), or the
    field's default. A nested mapping is laid over the nested default *instance*, so a partial
    override such as ``quant.granularity=tensor`` keeps an experiment's other ``quant`` defaults.
    A dataclass with ``__config_merge__ = False`` (e.g. a device given either as resistances or as
    conductances) is replaced whole instead.
    """
    data = dict(data or {})
    renamed = getattr(cls, "__renamed__", {})
    for old in sorted(set(data) & set(renamed)):
        where = f"{prefix}.{old}" if prefix else old
        raise ConfigError(f"{where}: this key was renamed; {renamed[old]}")
    if base is not None and not getattr(type(base), "__config_merge__", True):
        base = None
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        where = prefix or cls.__name__
        raise ConfigError(
            f"unknown key(s) {unknown} in {where}; valid keys are {sorted(fields)}"
        )
    kwargs = {}
    for name, f in fields.items():
        current = getattr(base, name) if base is not None else None
        if name not in data:
            if base is not None:
                kwargs[name] = copy.deepcopy(current)
            continue
        key = f"{prefix}.{name}" if prefix else name
        value = data[name]
        nested_base = None
        if isinstance(value, dict):
            nested_base = current if base is not None else _field_default(f)
            if not (dataclasses.is_dataclass(nested_base) and not isinstance(nested_base, type)):
                nested_base = None
        kwargs[name] = _convert(value, hints[name], key, nested_base)
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        raise ConfigError(_prefixed(str(exc), prefix)) from None


_HEAD = re.compile(r"[A-Za-z_][\w\[\]]*(?:\.[\w\[\]+/]+)*")


def _prefixed(msg: str, prefix: str) -> str:
    """Put the config path ``prefix`` in front of a message from a nested object's own check.

    A message that names the object's own short key (``converter.bits=3: ...``) gets that first
    component replaced by the full path (``crossbar.adc.bits=3: ...``), never doubled.
    """
    if not prefix or msg.startswith(prefix):
        return msg
    m = _HEAD.match(msg)
    if m and "." in m.group(0):
        head = m.group(0)
        return prefix + head[head.index("."):] + msg[m.end():]
    if m and m.group(0) == prefix.rsplit(".", 1)[-1]:
        return prefix + msg[m.end():]
    return f"{prefix}.{msg}" if m and m.end() < len(msg) and msg[m.end()] in "=:" else f"{prefix}: {msg}"


def to_dict(obj: Any) -> Any:
    """Plain (JSON-able) representation of a config dataclass tree."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj) if f.init}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    if isinstance(obj, Path):
        return str(obj)
    return obj


def load_config(path: str | Path) -> dict:
    """Read a YAML, TOML or JSON file into a plain dict (validation happens in from_dict)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    text = path.read_text()
    try:
        if path.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        elif path.suffix == ".toml":
            import tomllib

            data = tomllib.loads(text)
        elif path.suffix == ".json":
            data = json.loads(text)
        else:
            raise ConfigError(f"config file {str(path)!r}: use .yaml, .yml, .toml or .json")
    except ConfigError:
        raise
    except Exception as exc:  # parse errors of any of the three formats
        raise ConfigError(f"config file {str(path)!r} could not be parsed: {' '.join(str(exc).split())}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {str(path)!r} must hold a mapping at the top level")
    return data


def _parse_scalar(text: str) -> Any:
    import yaml

    try:
        return yaml.safe_load(text)
    except Exception:
        return text


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Apply ``a.b.c=value`` overrides (values parsed as YAML scalars) to a nested dict."""
    data = json.loads(json.dumps(data))  # deep copy of plain data
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r}: expected KEY=VALUE, e.g. trials=10")
        key, text = item.split("=", 1)
        parts = key.strip().split(".")
        node = data
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {part!r} is not a section")
        node[parts[-1]] = _parse_scalar(text)
    return data
