"""Build hook: what a wheel carries besides the package, and quick start-up for an
editable install.

A wheel (``pip install localqueue``) gets the generated files that a user would otherwise
need a clone for, copied from their one committed place (``python scripts/regen.py``
writes them):

* ``completions/*`` and ``man/*.1`` into the package as ``localqueue/data/``, where
  ``localqueue completion`` and ``localqueue man`` read them;
* the man pages as data files under ``share/man/man1/`` (so ``man localqueue-queue-add``
  works with the environment's ``share/man`` on ``MANPATH``), and each completion script
  where a shell installed in the same prefix looks (``share/bash-completion/completions``,
  ``share/zsh/site-functions``, ``share/fish/vendor_completions.d``).

An editable install (``pip install -e``) runs from the checkout, where ``localqueue
completion`` and ``localqueue man`` read ``completions/`` and ``man/`` as they are; it gets
the files under ``share/`` all the same, since ``man`` and the shells look only there (an
install over a regular one would otherwise remove the man pages it put there). Those are
copies: after ``python scripts/regen.py``, install again to refresh them.

An editable install is also byte-compiled: pip writes ``__pycache__`` for every module of
a wheel it installs, whatever PYTHONDONTWRITEBYTECODE says, but an editable install points
at the source tree and gets no bytecode. Where PYTHONDONTWRITEBYTECODE=1 is set (many
container images, some CI machines), every ``localqueue`` command would then compile its
modules from source: about 18 ms of a 25 ms ``queue add``. Python ignores a stale ``.pyc``
on its own.
"""

from __future__ import annotations

import compileall
import contextlib
import os
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

# completions/<file> -> where each shell looks, under the installation prefix
SHELL_DIRS = {
    "localqueue.bash": "share/bash-completion/completions/localqueue",
    "_localqueue": "share/zsh/site-functions/_localqueue",
    "localqueue.fish": "share/fish/vendor_completions.d/localqueue.fish",
}


def shipped_files(root: str) -> tuple[dict[str, str], dict[str, str]]:
    """What a wheel built from ``root`` carries: (package files, shared data files), each
    a map of source path -> path in the wheel."""
    package: dict[str, str] = {}
    shared: dict[str, str] = {}
    completions = os.path.join(root, "completions")
    for name in sorted(os.listdir(completions)):
        source = os.path.join(completions, name)
        package[source] = f"localqueue/data/completions/{name}"
        if name in SHELL_DIRS:
            shared[source] = SHELL_DIRS[name]
    man = os.path.join(root, "man")
    for name in sorted(n for n in os.listdir(man) if n.endswith(".1")):
        source = os.path.join(man, name)
        package[source] = f"localqueue/data/man/{name}"
        shared[source] = f"share/man/man1/{name}"
    return package, shared


class ShippedFiles(BuildHookInterface):  # type: ignore[type-arg]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel":
            return
        package, shared = shipped_files(self.root)
        build_data["shared_data"].update(shared)
        if version == "editable":
            # Best effort: a read-only checkout just starts slower.
            with contextlib.suppress(OSError):
                compileall.compile_dir(os.path.join(self.root, "localqueue"), quiet=2)
            return
        build_data["force_include"].update(package)
