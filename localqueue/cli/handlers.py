"""The handler of ``queue process``: ``module:function`` or ``path/to/file.py:function``.

A spec whose left part ends in ``.py`` or holds a ``/`` names a file, imported by path
(``./jobs/send.py:handle``); anything else is a module, imported from the current
directory first and then ``sys.path`` (``jobs.send:handle``). Whatever goes wrong is a
usage error (exit 2) carrying the import error's own message.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import TYPE_CHECKING

from localqueue.cli.exit_codes import UsageError

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import ModuleType
    from typing import Any

__all__ = ["load_handler"]


def load_handler(spec: str) -> Callable[[Any], Any]:
    """The callable ``spec`` names (dotted attributes allowed: ``mod:Class.method``), or
    a UsageError."""
    source, _, attribute = spec.rpartition(":")
    if not source or not attribute:
        raise UsageError(
            f"handler must be module:function or path/to/file.py:function, got {spec!r}"
        )
    is_file = source.endswith(".py") or os.sep in source
    target: Any = _import_file(source) if is_file else _import_module(source)
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise UsageError(f"{source!r} has no attribute {attribute!r}") from None
    if not callable(target):
        raise UsageError(f"{spec} is not callable")
    function: Callable[[Any], Any] = target
    return function


def _import_module(name: str) -> ModuleType:
    here = os.getcwd()
    if "" not in sys.path and here not in sys.path:
        sys.path.insert(0, here)
    try:
        return importlib.import_module(name)
    except Exception as exc:
        raise UsageError(f"cannot import {name!r}: {type(exc).__name__}: {exc}") from None


def _import_file(path: str) -> ModuleType:
    """Import the file at ``path`` as a module named after it, with its directory first
    on ``sys.path`` (so that it imports its neighbours as a script would)."""
    import importlib.util

    full = os.path.abspath(path)
    if not os.path.isfile(full):
        raise UsageError(f"cannot import {path!r}: no such file")
    stem = os.path.splitext(os.path.basename(full))[0]
    # Registered in sys.modules (dataclasses, pickling and typing look modules up there),
    # under its own name unless that would shadow a module already imported.
    name = stem if stem.isidentifier() and stem not in sys.modules else "localqueue_handler"
    spec = importlib.util.spec_from_file_location(name, full)
    if spec is None or spec.loader is None:
        raise UsageError(f"cannot import {path!r}: not a Python source file")
    module = importlib.util.module_from_spec(spec)
    directory = os.path.dirname(full)
    if directory not in sys.path:
        sys.path.insert(0, directory)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise UsageError(f"cannot import {path!r}: {type(exc).__name__}: {exc}") from None
    return module
