"""Run-time validation of attribute values: never raises (set-up checks live in ``_checks``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from stepwatch._safety import report

__all__ = ["clean_attributes", "describe", "is_valid_value", "text", "valid_attempt"]

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


def valid_attempt(value: object) -> int | None:
    """An attempt number read at run time (a callable's result, a carrier entry), or ``None``."""
    if isinstance(value, str):
        try:
            value = int(value)
        except ValueError:
            return None
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    number = int.__index__(value)  # int's own slot: an int subclass's overrides never run
    return number if number >= 1 else None


def describe(exc: BaseException) -> str:
    """``str(exc)``, or ``<unprintable TypeName>`` when that raises or is not a string.

    The host's exception objects may be hostile (a ``__str__`` that raises, or
    returns a non-string, or recurses): describing one never fails.
    """
    try:
        text = str(exc)
    except BaseException:
        text = None
    if not isinstance(text, str):
        return f"<unprintable {_safe_type_name(exc)}>"
    return text[:MAX_TEXT]


def _safe_type_name(exc: BaseException) -> str:
    try:
        return str(type(exc).__qualname__)
    except Exception:
        return "exception"
