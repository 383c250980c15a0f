"""The rule registry: the rules by name. ``rules/__init__.py`` registers every rule class
once, in one list; the rest of the library asks here (``available``, ``get``, ``create``)
instead of naming rules."""

from __future__ import annotations

from .base import Rule

_RULES: dict[str, type[Rule]] = {}


def register(*classes: type[Rule]) -> None:
    """Register rule classes under their ``name`` (a name taken twice is an error)."""
    for cls in classes:
        if cls.name in _RULES and _RULES[cls.name] is not cls:
            raise ValueError(f"two rules are named {cls.name!r}: {_RULES[cls.name].__name__} "
                             f"and {cls.__name__}")
        _RULES[cls.name] = cls


def available(direct: bool | None = None) -> list[str]:
    """The registered rule names; with ``direct``, only the direct rules (``True``: those
    that send the output error to taps) or only the others (``False``)."""
    return sorted(name for name, cls in _RULES.items()
                  if direct is None or cls.direct == direct)


def get(name: str) -> type[Rule]:
    """The class registered as ``name``."""
    if name not in _RULES:
        raise ValueError(f"unknown rule {name!r}; available rules: {', '.join(available())}")
    return _RULES[name]


def create(name: str, **options) -> Rule:
    """Build rule ``name`` with ``options`` (unknown options raise, listing the valid ones)."""
    return get(name)(**options)
