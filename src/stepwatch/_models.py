"""Shared helpers for the public data models: JSON-ready conversion."""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

__all__ = ["iso", "json_ready"]


def iso(timestamp: float | None) -> str | None:
    """Render epoch seconds as an ISO 8601 UTC timestamp, or ``None``."""
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, tz=UTC).isoformat().replace("+00:00", "Z")


_TIME_FIELDS = frozenset(
    {"started_at", "ended_at", "updated_at", "timestamp", "checked_at", "resolved_at"}
)


def json_ready(value: Any, key: str | None = None) -> Any:
    """Convert a model value to plain JSON types.

    Dataclasses become dicts, enums their values, timestamps (fields named in
    ``_TIME_FIELDS``) ISO 8601 strings, non-finite floats ``None``.
    """
    if isinstance(value, enum.Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            field.name: json_ready(getattr(value, field.name), field.name)
            for field in dataclasses.fields(value)
        }
    if isinstance(value, Mapping):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(v) for v in value]
    if isinstance(value, float):
        if key in _TIME_FIELDS:
            return iso(value)
        return value if math.isfinite(value) else None
    if isinstance(value, int) and not isinstance(value, bool) and key in _TIME_FIELDS:
        return iso(float(value))
    return value
