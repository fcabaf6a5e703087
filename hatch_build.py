"""Build hook: an editable install byte-compiles the package, as pip does for a wheel.

pip writes ``__pycache__`` for every module of a wheel it installs, whatever
PYTHONDONTWRITEBYTECODE says; an editable install points at the source tree and gets no
bytecode. Where PYTHONDONTWRITEBYTECODE=1 is set (many container images, some CI
machines), every ``localqueue`` command would then compile its modules from source:
about 18 ms of a 25 ms ``queue add``. Compiling them once here keeps an editable
install as quick to start as a regular one; Python ignores a stale ``.pyc`` on its own.
"""

from __future__ import annotations

import compileall
import contextlib
import os
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class CompileEditable(BuildHookInterface):  # type: ignore[type-arg]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel" or version != "editable":
            return
        # Best effort: a read-only checkout just starts slower.
        with contextlib.suppress(OSError):
            compileall.compile_dir(os.path.join(self.root, "localqueue"), quiet=2)
