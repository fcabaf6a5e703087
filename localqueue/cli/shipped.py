"""The generated files that ship with the package: completion scripts and man pages.

``completions/`` and ``man/`` in the repository are the one committed copy (written by
``python scripts/regen.py``). Building a wheel copies them (``hatch_build.py``) into the
package as ``localqueue/data/completions/`` and ``localqueue/data/man/``, and the man pages
also into ``share/man/man1/`` for ``man``. An editable install runs from the checkout, so
there they are read where they are committed.
"""

from __future__ import annotations

import os

__all__ = ["SCRIPTS", "path"]

#: The completion script of each shell, as named in ``completions/``.
SCRIPTS = {"bash": "localqueue.bash", "zsh": "_localqueue", "fish": "localqueue.fish"}

_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # localqueue/


def path(relative: str) -> str | None:
    """The shipped file ``relative`` (``completions/...`` or ``man/...``): inside the
    installed package, else in the checkout of an editable install; None when missing."""
    for root in (os.path.join(_PACKAGE, "data"), os.path.dirname(_PACKAGE)):
        candidate = os.path.join(root, relative)
        if os.path.isfile(candidate):
            return candidate
    return None
