"""Validation of a detector's JSON params against its ``Params`` dataclass.

A detector declares ``Params`` as a plain dataclass. Bounds and choices go in the field
metadata (``min``, ``max``, ``choices``)::

    @dataclass
    class Params:
        window: int = field(default=50, metadata={"min": 3})

``validate_params(Params, {"window": 1})`` raises ``ParamsError({"window": "must be >= 3"})``;
every bad field is reported at once, unknown keys included.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from typing import Any


class ParamsError(ValueError):
    """Invalid detector params; ``errors`` maps each bad field to a message."""

    def __init__(self, errors: dict[str, str]):
        self.errors = dict(errors)
        super().__init__("; ".join(f"{k}: {v}" for k, v in self.errors.items()))


@dataclasses.dataclass
class NoParams:
    """For detectors without parameters."""


def _allowed_types(hint: Any) -> tuple[tuple[type, ...], bool]:
    """(accepted python types, None allowed) for a field's type hint."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        inner = [a for a in args if a is not type(None)]
        accepted: tuple[type, ...] = ()
        for arg in inner:
            accepted += _allowed_types(arg)[0]
        return accepted, type(None) in args
    if origin is not None:
        hint = origin
    if hint is float:
        return (float, int), False
    return (hint,), False


def _check_value(name: str, value: Any, hint: Any, meta: Mapping[str, Any]) -> str | None:
    accepted, nullable = _allowed_types(hint)
    if value is None:
        return None if nullable else "must not be null"
    if isinstance(value, bool) and bool not in accepted:
        return f"must be of type {'/'.join(t.__name__ for t in accepted)}, not bool"
    if not isinstance(value, accepted):
        return f"must be of type {'/'.join(t.__name__ for t in accepted)}, not {type(value).__name__}"
    if isinstance(value, float) and not math.isfinite(value):
        return "must be a finite number"
    if "choices" in meta and value not in meta["choices"]:
        return f"must be one of {', '.join(map(str, meta['choices']))}"
    if "min" in meta and value < meta["min"]:
        return f"must be >= {meta['min']}"
    if "max" in meta and value > meta["max"]:
        return f"must be <= {meta['max']}"
    return None


def validate_params(params_cls: type, data: Mapping[str, Any] | None) -> Any:
    """Return a ``params_cls`` instance built from ``data`` or raise ``ParamsError``."""
    data = dict(data or {})
    hints = typing.get_type_hints(params_cls)
    fields = {f.name: f for f in dataclasses.fields(params_cls)}
    errors = {key: "unknown parameter" for key in data if key not in fields}
    for name, fld in fields.items():
        if name not in data:
            continue
        message = _check_value(name, data[name], hints[name], fld.metadata)
        if message:
            errors[name] = message
    if errors:
        raise ParamsError(errors)
    values = {
        k: (float(v) if _allowed_types(hints[k])[0][:1] == (float,) and v is not None else v) for k, v in data.items()
    }
    return params_cls(**values)
