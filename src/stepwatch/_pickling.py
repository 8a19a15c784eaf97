"""Decorated functions that pickle like the plain function, and keep their decoration by value.

stepwatch's decorators return plain Python functions (``functools.wraps``
style), so ``pickle`` treats them as it treats the function they decorate:

- a function importable by its module and qualified name pickles *by
  reference*, to the same bytes as the plain function, and unpickles to the
  decorated function of the other process;
- bound methods, classmethods and staticmethods pickle as Python pickles
  them (``getattr(owner, name)`` or by qualified name);
- plain ``pickle`` refuses what it refuses for the plain function (a local
  function), with the same error.

``cloudpickle`` pickles a function that is not importable (one in
``__main__``, a local one) *by value*: its code and closure. For a decorated
function that would carry stepwatch's wrapper code and scope internals, so a
post-import hook, installed at the first decoration, reduces stepwatch's
wrappers as "the plain function, decorated again by the same scope" exactly
when cloudpickle would pickle the plain function by value. Which functions
are stepwatch's wrappers is kept in a weak registry (:func:`register`), so a
decorated function costs nothing once it is gone.
"""

from __future__ import annotations

import sys
import threading
import weakref
from collections.abc import Callable
from types import FunctionType
from typing import Any

import wrapt

from stepwatch._safety import report

__all__ = ["register"]


_MISSING = object()

_decorations: weakref.WeakKeyDictionary[Callable[..., Any], tuple[Any, Callable[[Any], Any]]] = (
    weakref.WeakKeyDictionary()
)
"""stepwatch's wrappers: wrapper -> (the plain function, the scope that decorated it)."""


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
    """Unpickle a decorated function pickled by value: the plain function, decorated again."""
    return scope(wrapped)


_hook_lock = threading.Lock()
_hook_registered = False


def register(wrapper: Callable[..., Any], wrapped: Any, scope: Callable[[Any], Any]) -> None:
    """Remember ``wrapper`` as ``scope``'s decoration of ``wrapped``; install the cloudpickle
    hook once per process."""
    global _hook_registered  # noqa: PLW0603 - one post-import hook per process
    if not _hook_registered:
        with _hook_lock:
            if not _hook_registered:
                _hook_registered = True
                wrapt.register_post_import_hook(_patch_cloudpickle, "cloudpickle")
    _decorations[wrapper] = (wrapped, scope)


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
    decoration = _decorations.get(obj) if type(obj) is FunctionType else None
    if decoration is None:
        return wrapped(*args, **kwargs)
    if _cloudpickle_by_reference(obj):
        return NotImplemented  # pickle then saves the function by its qualified name
    return _redecorate, decoration
