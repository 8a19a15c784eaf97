"""Publishes one Celery task that has expired before any worker can take it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.engines.celery_app import add

add.apply_async((1, 1), expires=datetime.now(UTC) - timedelta(seconds=5))
print("published", flush=True)
