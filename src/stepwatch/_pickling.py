"""Decorated callables that pickle like the plain function, and keep their decoration by value.

A wrapt proxy refuses to pickle (``object proxy must define __reduce__()``),
so a decorated function could not cross a process boundary: spawn pools,
``ProcessPoolExecutor``, ``dask.distributed``. The wrapper classes here
reduce the way Python reduces what they wrap:

- a function importable by its module and qualified name pickles *by
  reference*, to the same bytes as the plain function, and unpickles to the
  decorated object of the other process;
- a bound method (or classmethod, or a function reached through its class)
  pickles as ``getattr(owner, name)``, as bound methods do;
- anything else (a function in ``__main__`` pickled by ``cloudpickle``, a
  local function) pickles *by value* as "the plain function, decorated again
  by the same scope", so the decoration survives. Plain ``pickle`` still
  refuses what it refuses for the plain function, with the same error.

``cloudpickle`` decides by-value before asking the object how to reduce
(its ``Pickler.reducer_override`` sees a proxy whose ``__class__`` is
``function`` and pickles the *wrapped* function, silently dropping the
decoration). A post-import hook, installed at the first decoration, wraps
that method so that stepwatch's wrappers are reduced as above, by value
exactly when cloudpickle would pickle the plain function by value.
"""

from __future__ import annotations

import inspect
import sys
import threading
from collections.abc import Callable
from typing import Any

import wrapt

from stepwatch._safety import report

__all__ = ["Decorated", "decorate"]


_MISSING = object()


def _lookup(module_name: object, dotted: object) -> Any:
    """What ``module_name`` and a dotted qualified name resolve to now, or ``_MISSING``."""
    module = sys.modules.get(module_name if isinstance(module_name, str) else "")
    if module is None or not isinstance(dotted, str) or not dotted or "<locals>" in dotted:
        return _MISSING
    found: Any = module
    try:
        for part in dotted.split("."):
            found = getattr(found, part)
    except AttributeError:
        return _MISSING
    return found


def _importable(obj: Any) -> bool:
    """Whether ``obj`` is what its module and qualified name resolve to (pickle's own test)."""
    return _lookup(getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)) is obj


def _redecorate(wrapped: Any, scope: Callable[[Any], Any]) -> Any:
    """Unpickle a decorated callable pickled by value: the plain callable, decorated again."""
    return scope(wrapped)


class _BoundDecorated(wrapt.BoundFunctionWrapper[..., Any]):
    """A decorated function bound to an instance or class: pickles as ``getattr(owner, name)``."""

    def __reduce_ex__(self, protocol: object) -> Any:
        target = self.__wrapped__
        owner = getattr(target, "__self__", None)
        name = getattr(target, "__name__", None)
        if owner is not None and inspect.ismethod(target):
            return getattr, (owner, name)
        # A staticmethod, or a function reached through its class: the owner is
        # the class its qualified name goes through.
        qualname = str(getattr(target, "__qualname__", ""))
        owner_path, _, attribute = qualname.rpartition(".")
        found = _lookup(getattr(target, "__module__", None), owner_path)
        if found is _MISSING:
            raise TypeError(f"cannot pickle {qualname!r}: its class is not importable")
        return getattr, (found, attribute)

    def __reduce__(self) -> Any:
        return self.__reduce_ex__(2)


class Decorated(wrapt.FunctionWrapper[..., Any]):
    """What stepwatch's decorators return: a ``wrapt.FunctionWrapper`` that pickles.

    The decorating scope rides along in ``_self_scope`` (wrapt keeps
    ``_self_``-prefixed attributes on the proxy, not on the wrapped function).
    """

    __bound_function_wrapper__ = _BoundDecorated

    def __init__(
        self, wrapped: Any, wrapper: Callable[..., Any], scope: Callable[[Any], Any]
    ) -> None:
        super().__init__(wrapped, wrapper)
        self._self_scope = scope

    def __reduce_ex__(self, protocol: object) -> Any:
        if _importable(self):
            return self.__qualname__  # by reference: pickle writes module and name
        return self._by_value()

    def __reduce__(self) -> Any:
        return self.__reduce_ex__(2)

    def _by_value(self) -> tuple[Any, ...]:
        """The by-value reduction (for picklers that pickle the plain function by value)."""
        return _redecorate, (self.__wrapped__, self._self_scope)


_hook_lock = threading.Lock()
_hook_registered = False


def decorate(wrapped: Any, wrapper: Callable[..., Any], scope: Callable[[Any], Any]) -> Any:
    """Wrap ``wrapped`` in a :class:`Decorated`; install the cloudpickle hook once."""
    global _hook_registered  # noqa: PLW0603 - one post-import hook per process
    if not _hook_registered:
        with _hook_lock:
            if not _hook_registered:
                _hook_registered = True
                wrapt.register_post_import_hook(_patch_cloudpickle, "cloudpickle")
    return Decorated(wrapped, wrapper, scope)


def _patch_cloudpickle(module: Any) -> None:
    """Make cloudpickle reduce stepwatch's wrappers the way it would reduce the plain function."""
    try:
        pickler = getattr(module, "Pickler", None)
        if pickler is None or not hasattr(pickler, "reducer_override"):
            return
        wrapt.wrap_function_wrapper(pickler, "reducer_override", _reducer_override)
    except Exception:
        report("pickling.cloudpickle", "stepwatch: could not hook cloudpickle", exc_info=True)


def _cloudpickle_by_reference(obj: Any) -> bool:
    """cloudpickle's rule for functions: by reference when importable, outside ``__main__``
    and outside the modules registered with ``cloudpickle.register_pickle_by_value``."""
    name = getattr(obj, "__module__", None)
    if not isinstance(name, str) or name == "__main__" or not _importable(obj):
        return False
    cloudpickle = sys.modules.get("cloudpickle")
    listing = getattr(cloudpickle, "list_registry_pickle_by_value", None)
    registered = set(listing()) if listing is not None else set()
    parts = name.split(".")
    return not any(".".join(parts[:end]) in registered for end in range(1, len(parts) + 1))


def _reducer_override(
    wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    obj: Any = args[0] if args else None
    kind = type(obj)
    if kind is Decorated:
        if _cloudpickle_by_reference(obj):
            return NotImplemented  # pickle then calls Decorated.__reduce_ex__
        return obj._by_value()
    if kind is _BoundDecorated:
        return NotImplemented
    return wrapped(*args, **kwargs)
