"""Plain dict registries of "module:Class" entries, imported lazily on first use."""

from __future__ import annotations

import importlib


def registered_class(registry: dict[str, str], key: str, kind: str) -> type:
    """The class registered under `key` (KeyError for an unknown key); it must declare that key."""
    try:
        target = registry[key]
    except KeyError:
        raise KeyError(f"unknown {kind} {key!r}; known: {', '.join(registry)}") from None
    module_name, _, class_name = target.partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    if cls.key != key:
        raise RuntimeError(f"{target} declares key {cls.key!r}, registered as {key!r}")
    return cls
