"""The handler of ``queue process``: ``module:function`` or ``path/to/file.py:function``.

A spec whose left part ends in ``.py`` or holds a ``/`` names a file, imported by path
(``./jobs/send.py:handle``); anything else is a module, imported from the current
directory first and then ``sys.path`` (``jobs.send:handle``). Whatever goes wrong is a
usage error (exit 2) carrying the import error's own message and the file and line of the
handler's code that raised it (``LOCALQUEUE_DEBUG=1`` prints the whole traceback).
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
        raise _cannot_import(name, exc) from exc


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
        raise _cannot_import(path, exc) from exc
    return module


def _cannot_import(what: str, exc: Exception) -> UsageError:
    """``cannot import 'deep': KeyError: 'x' (raised at deep.py, line 3)``: where in the
    user's code the import failed (its last frame outside importlib and this module);
    nothing added when it failed in neither (no such module; a SyntaxError names its
    file and line itself)."""
    import traceback

    message = f"cannot import {what!r}: {type(exc).__name__}: {exc}"
    machinery = os.path.dirname(importlib.__file__) + os.sep
    frames = [
        frame
        for frame in traceback.extract_tb(exc.__traceback__)
        if not frame.filename.startswith(("<frozen ", machinery)) and frame.filename != __file__
    ]
    if frames:
        where = frames[-1].filename
        relative = os.path.relpath(where)
        shown = where if relative.startswith(os.pardir + os.sep) else relative
        message += f" (raised at {shown}, line {frames[-1].lineno})"
    return UsageError(message)
