"""Validation of attribute values and set-up arguments."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from stepwatch._safety import report

__all__ = [
    "check_callable_or",
    "check_count",
    "check_name",
    "check_seconds",
    "clean_attributes",
    "is_valid_value",
    "setup_attributes",
    "text",
]

_PRIMITIVES = (str, bool, int, float)
MAX_TEXT = 1024
"""Longest reason, message or approver string kept (longer ones are cut)."""


def is_valid_value(value: object) -> bool:
    """Whether ``value`` is a valid OpenTelemetry attribute value.

    Valid values are ``str``, ``bool``, ``int``, ``float`` and homogeneous
    lists or tuples of one of those.
    """
    if isinstance(value, _PRIMITIVES):
        return True
    if isinstance(value, list | tuple):
        if not value:
            return True
        first = type(value[0])
        if first not in _PRIMITIVES:
            return False
        return all(type(item) is first for item in value)
    return False


def clean_attributes(attributes: Mapping[str, object], where: str) -> dict[str, Any]:
    """Keep the valid attributes; report (log once, count) and drop the others. Never raises."""
    clean: dict[str, Any] = {}
    for key, value in attributes.items():
        if isinstance(key, str) and key and is_valid_value(value):
            clean[key] = value
        else:
            report(
                f"{where}.attribute",
                "stepwatch: dropped attribute %r of type %s in %s: not a valid "
                "OpenTelemetry attribute (str, bool, int, float or a homogeneous list of them)",
                key,
                type(value).__name__,
                where,
            )
    return clean


def text(value: object) -> str:
    """Coerce a reason or message to a bounded string."""
    result = value if isinstance(value, str) else str(value)
    return result[:MAX_TEXT]


# ---------------------------------------------------------------- set-up checks
def check_name(value: object, argument: str, *, optional: bool = True) -> str | None:
    """Validate a name argument at set-up time.

    Raises:
        TypeError: ``value`` is neither ``None`` (when optional) nor a string.
        ValueError: ``value`` is an empty or blank string.
    """
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise TypeError(f"{argument} must be a non-empty string, got {type(value).__name__}")
    if not value.strip():
        raise ValueError(f"{argument} must be a non-empty string, got {value!r}")
    return value


def check_callable_or(value: object, argument: str, kinds: tuple[type, ...], what: str) -> object:
    """Validate an argument that is ``None``, one of ``kinds``, or a callable."""
    if value is None or callable(value) or isinstance(value, kinds):
        return value
    raise TypeError(f"{argument} must be {what} or a callable, got {type(value).__name__}")


def check_count(value: object, argument: str) -> int | Callable[..., Any] | None:
    """Validate ``total_steps``-like arguments: ``None``, an int >= 0, or a callable."""
    if value is None or callable(value):
        return value
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{argument} must be an int >= 0 or a callable, got {type(value).__name__}")
    if value < 0:
        raise ValueError(f"{argument} must be >= 0, got {value}")
    return value


def check_attempt(value: object, argument: str = "attempt") -> int | Callable[..., Any] | None:
    """Validate an ``attempt`` argument: ``None``, an int >= 1, or a callable."""
    if value is None or callable(value):
        return value
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{argument} must be an int >= 1 or a callable, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{argument} must be >= 1, got {value}")
    return value


def valid_attempt(value: object) -> int | None:
    """An attempt number read at run time (a callable's result, a carrier entry), or ``None``."""
    if isinstance(value, str):
        try:
            value = int(value)
        except ValueError:
            return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        return None
    return value


def check_seconds(value: object, argument: str) -> float | None:
    """Validate a positive, finite number of seconds (or ``None``)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{argument} must be a number of seconds, got {type(value).__name__}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{argument} must be a positive, finite number of seconds, got {value}")
    return float(value)


def setup_attributes(value: object, argument: str = "attributes") -> dict[str, Any]:
    """Validate static span attributes given at set-up time.

    Raises:
        TypeError: not a mapping of string keys to valid attribute values.
    """
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise TypeError(f"{argument} must be a mapping, got {type(value).__name__}")
    for key, item in value.items():
        if not isinstance(key, str) or not key:
            raise TypeError(f"{argument} keys must be non-empty strings, got {key!r}")
        if not is_valid_value(item):
            raise TypeError(
                f"{argument}[{key!r}] must be a str, bool, int, float or a homogeneous "
                f"list of them, got {type(item).__name__}"
            )
    return dict(value)
