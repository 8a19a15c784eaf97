"""Set-up argument checks: the one place public entry points validate their arguments.

One rule for every check, so every entry point fails the same way:

- a value of the wrong **type** raises :class:`TypeError` (``bool`` is never
  a number here, ``None`` only where the argument is optional);
- a value of the right type **out of range** raises :class:`ValueError`
  (NaN and infinities are out of range for every number of seconds);
- the message names the argument and shows the value:
  ``"interval must be a positive, finite number of seconds, got inf"``.

Each check returns the value normalised (seconds as ``float``). Checks run at
set-up time only (constructors, decorators, ``configure``, query arguments);
the hot path validates with its own non-raising helpers in
:mod:`stepwatch._attributes`.
"""

from __future__ import annotations

import datetime
import enum
import math
import os
import reprlib
import threading
from collections.abc import Collection, Mapping
from typing import Any, Final, TypeVar

from stepwatch._attributes import is_valid_value

__all__ = [
    "attributes",
    "callable_or",
    "choice",
    "count",
    "count_or_callable",
    "function",
    "instance",
    "member",
    "name",
    "path",
    "ratio",
    "seconds",
    "show",
]

_T = TypeVar("_T")
_E = TypeVar("_E", bound=enum.Enum)

MAX_SECONDS: Final = float(threading.TIMEOUT_MAX)
"""The longest wait the platform's locks accept; every number of seconds is at most this."""

_SHOW = reprlib.Repr()
_SHOW.maxstring = 60
_SHOW.maxother = 60


def show(value: object) -> str:
    """A short, never-raising ``repr`` of ``value`` for error messages."""
    try:
        return _SHOW.repr(value)
    except Exception:
        return f"<unprintable {type(value).__name__}>"


def _type_error(argument: str, what: str, value: object) -> TypeError:
    return TypeError(f"{argument} must be {what}, got {type(value).__name__} {show(value)}")


def _value_error(argument: str, what: str, value: object) -> ValueError:
    return ValueError(f"{argument} must be {what}, got {show(value)}")


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def name(value: object, argument: str, *, optional: bool = False) -> Any:
    """A non-blank string (or ``None`` when optional).

    Raises:
        TypeError: not a string (nor ``None`` when optional).
        ValueError: empty or only whitespace.
    """
    if value is None and optional:
        return None
    what = "a non-empty string" + (" or None" if optional else "")
    if not isinstance(value, str):
        raise _type_error(argument, what, value)
    if not value.strip():
        raise _value_error(argument, what, value)
    return value


def seconds(
    value: object,
    argument: str,
    *,
    optional: bool = False,
    allow_zero: bool = False,
    at_least: float | None = None,
    at_most: float = MAX_SECONDS,
) -> Any:
    """A finite number of seconds, > 0 (>= 0 with ``allow_zero``), at most ``at_most``.

    ``at_most`` defaults to :data:`MAX_SECONDS`, the longest wait the
    platform accepts.

    Raises:
        TypeError: not an int or float (nor ``None`` when optional).
        ValueError: NaN, infinite, negative, zero (unless allowed), below
            ``at_least`` or above :data:`MAX_SECONDS`.
    """
    if value is None and optional:
        return None
    low = at_least if at_least is not None else 0
    bound = f">= {low:g}" if allow_zero or at_least is not None else "> 0"
    if at_most < MAX_SECONDS:
        bound += f" and <= {at_most:g}"
    what = f"a finite number of seconds {bound}" + (" or None" if optional else "")
    if not _is_number(value):
        raise _type_error(argument, what, value)
    number = float(value)  # type: ignore[arg-type]
    if (
        not math.isfinite(number)
        or number > at_most
        or number < low
        or (number == 0 and not allow_zero)
    ):
        raise _value_error(argument, what, value)
    return number


def moment(value: object, argument: str) -> float | None:
    """A point in time as epoch seconds: a finite number, a ``datetime`` or ``None``.

    A naive ``datetime`` is taken as local time (as ``datetime.timestamp`` does).

    Raises:
        TypeError: neither a number, a ``datetime`` nor ``None``.
        ValueError: NaN or infinite.
    """
    if value is None:
        return None
    what = "epoch seconds (a finite number) or a datetime"
    if isinstance(value, datetime.datetime):
        return value.timestamp()
    if not _is_number(value):
        raise _type_error(argument, what, value)
    number = float(value)  # type: ignore[arg-type]
    if not math.isfinite(number):
        raise _value_error(argument, what, value)
    return number


def ratio(value: object, argument: str, *, include_one: bool = True) -> float:
    """A number in (0, 1] (or (0, 1) when ``include_one`` is false).

    Raises:
        TypeError: not an int or float.
        ValueError: NaN or outside the interval.
    """
    what = "a number in (0, 1]" if include_one else "a number in (0, 1)"
    if not _is_number(value):
        raise _type_error(argument, what, value)
    number = float(value)  # type: ignore[arg-type]
    if not (0 < number < 1 or (include_one and number == 1)):
        raise _value_error(argument, what, value)
    return number


def count(value: object, argument: str, *, minimum: int = 1, optional: bool = False) -> Any:
    """An int >= ``minimum`` (or ``None`` when optional).

    Raises:
        TypeError: not an int (``bool`` and ``float`` included).
        ValueError: below ``minimum``.
    """
    if value is None and optional:
        return None
    what = f"an int >= {minimum}" + (" or None" if optional else "")
    if isinstance(value, bool) or not isinstance(value, int):
        raise _type_error(argument, what, value)
    if value < minimum:
        raise _value_error(argument, what, value)
    return value


def function(value: _T, argument: str, *, optional: bool = False) -> _T:
    """A callable (or ``None`` when optional).

    Raises:
        TypeError: not callable.
    """
    if (value is None and optional) or callable(value):
        return value
    raise _type_error(argument, "callable" + (" or None" if optional else ""), value)


def instance(value: object, argument: str, kind: type[_T], what: str) -> _T:
    """An instance of ``kind`` (described as ``what`` in the message).

    Raises:
        TypeError: anything else.
    """
    if not isinstance(value, kind):
        raise _type_error(argument, what, value)
    return value


def choice(value: object, argument: str, choices: Collection[str]) -> str:
    """One of ``choices``.

    Raises:
        TypeError: not a string.
        ValueError: a string that is not one of them.
    """
    what = "one of " + ", ".join(repr(c) for c in choices)
    if not isinstance(value, str):
        raise _type_error(argument, what, value)
    if value not in choices:
        raise _value_error(argument, what, value)
    return value


def path(value: object, argument: str, *, optional: bool = False) -> Any:
    """A non-empty filesystem path: ``str`` or ``os.PathLike`` (or ``None`` when optional).

    Raises:
        TypeError: neither a string nor a path-like object.
        ValueError: empty.
    """
    if value is None and optional:
        return None
    what = "a non-empty path (str or os.PathLike)" + (" or None" if optional else "")
    if not isinstance(value, str | os.PathLike):
        raise _type_error(argument, what, value)
    if not os.fspath(value):
        raise _value_error(argument, what, value)
    return value


def member(value: object, argument: str, kind: type[_E], *, optional: bool = False) -> Any:
    """A member of the string enum ``kind``, given as the member or its value.

    Raises:
        TypeError: not a string (nor ``None`` when optional).
        ValueError: a string that is not one of the values.
    """
    if value is None and optional:
        return None
    if isinstance(value, kind):
        return value
    values = [member.value for member in kind]
    what = "one of " + ", ".join(repr(v) for v in values) + (" or None" if optional else "")
    if not isinstance(value, str):
        raise _type_error(argument, what, value)
    try:
        return kind(value)
    except ValueError:
        raise _value_error(argument, what, value) from None


def callable_or(value: object, argument: str, kinds: tuple[type, ...], what: str) -> Any:
    """``None``, one of ``kinds`` or a callable (a per-call argument such as ``carrier``).

    Raises:
        TypeError: anything else.
    """
    if value is None or callable(value) or isinstance(value, kinds):
        return value
    raise _type_error(argument, f"{what} or a callable", value)


def count_or_callable(value: object, argument: str, *, minimum: int) -> Any:
    """``None``, a callable, or an int >= ``minimum`` (``total_steps``, ``attempt``)."""
    if value is None or callable(value):
        return value
    what = f"an int >= {minimum} or a callable"
    if isinstance(value, bool) or not isinstance(value, int):
        raise _type_error(argument, what, value)
    if value < minimum:
        raise _value_error(argument, what, value)
    return value


def attributes(value: object, argument: str = "attributes") -> dict[str, Any]:
    """Static span attributes: a mapping of non-empty strings to attribute values.

    Raises:
        TypeError: not a mapping, a key that is not a non-empty string, or a
            value that is not a str, bool, int, float or a homogeneous list of them.
    """
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _type_error(argument, "a mapping", value)
    for key, item in value.items():
        if not isinstance(key, str) or not key:
            raise TypeError(f"{argument} keys must be non-empty strings, got {show(key)}")
        if not is_valid_value(item):
            raise TypeError(
                f"{argument}[{key!r}] must be a str, bool, int, float or a homogeneous "
                f"list of them, got {type(item).__name__} {show(item)}"
            )
    return dict(value)
