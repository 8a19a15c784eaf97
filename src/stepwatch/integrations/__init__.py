"""Engine integrations: Celery, RQ, Dramatiq and Huey instrumented with no code.

Each module holds one OpenTelemetry ``BaseInstrumentor`` over its engine's
own hooks, with an extra and an ``opentelemetry_instrumentor`` entry point::

    pip install 'stepwatch[celery]'
    opentelemetry-instrument celery -A app worker      # producer and worker alike

    from stepwatch.integrations.celery import CeleryInstrumentor
    CeleryInstrumentor().instrument()                  # the same, in code

=============  ===========================  ======================
module         instrumentor                 entry point
=============  ===========================  ======================
``celery``     ``CeleryInstrumentor``       ``stepwatch_celery``
``rq``         ``RQInstrumentor``           ``stepwatch_rq``
``dramatiq``   ``DramatiqInstrumentor``     ``stepwatch_dramatiq``
``huey``       ``HueyInstrumentor``         ``stepwatch_huey``
=============  ===========================  ======================

Every engine maps the same way: publishing a message is an
:func:`stepwatch.enqueue` (the carrier rides in the message's headers or
metadata under :data:`stepwatch.semconv.CARRIER_HEADER`), a task run is an
execution (name = the task's name, id = the engine's task id, attempt = the
engine's retry count + 1), the engine's retry ends the attempt as ``retry``,
its time limit as ``timeout``, revocation as ``cancellation``. See
``docs/integrations.md``. Importing this package loads no engine.
"""

from __future__ import annotations

__all__: list[str] = []
