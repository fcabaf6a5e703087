"""The start-up budget of the commands shell loops call many times.

The fast-path commands (``queue add``, ``pop``, ``ack``, ``release``, ``size``,
``inspect``, ``wait``), and a TAB (shell completion runs ``localqueue`` again for each
one), may not import the modules that cost milliseconds each:
``typing`` (~8 ms), ``dataclasses`` and the ``inspect`` it pulls in (~6 ms), ``orjson``
(~12 ms with what it imports), Typer and Click (``python -X importtime`` shows what each
costs; the test reads ``sys.modules`` after the command, which also holds the modules
``importlib`` loaded).

The tricks that keep those out (``TYPE_CHECKING = False`` instead of ``typing``'s, plain
slotted classes instead of dataclasses) are allowed only in modules such a command
imports: everywhere else the code is ordinary Python.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import localqueue
from localqueue.cli.fastpath import FAST_COMMANDS

OVER_BUDGET = {"typing", "dataclasses", "inspect", "orjson", "typer", "click", "tenacity"}
PACKAGE = Path(localqueue.__file__).parent

ARGUMENTS = {
    ("queue", "add"): ["q", "--value", '{"n": 1}'],
    ("queue", "pop"): ["q"],
    ("queue", "ack"): ["q", "1-000000000000"],
    ("queue", "release"): ["q", "1-000000000000"],
    ("queue", "size"): ["q"],
    ("queue", "inspect"): ["q", "1-000000000000"],
    ("queue", "wait"): ["q", "--timeout", "0"],
    ("queue", "history"): ["q", "--limit", "20"],
}


def _imported(argv: list[str]) -> set[str]:
    """Every module ``localqueue ARGV`` imports (in a fresh interpreter)."""
    command = (  # the console script's main(), which ends a fast command with os._exit
        "import os, sys; from localqueue.cli.app import main; exit = os._exit\n"
        "def report(code):\n"
        "    sys.stderr.write('\\nmodules: ' + ' '.join(sys.modules)); sys.stderr.flush()\n"
        "    exit(code)\n"
        "os._exit = report; sys.exit = report; main()"
    )
    done = subprocess.run(
        [sys.executable, "-c", command, *argv],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    last = done.stderr.splitlines()[-1] if done.stderr else ""
    assert last.startswith("modules: "), done.stderr
    return set(last.removeprefix("modules: ").split())


def _imported_by_a_tab(store: Path) -> set[str]:
    """Every module a TAB imports: ``localqueue`` asked, as the shipped bash script asks,
    for the ids of queue q's messages in ``store`` (which it must read to answer)."""
    command = (
        "import atexit, sys; from localqueue.cli.app import main; "
        "atexit.register(lambda: sys.stderr.write('\\nmodules: ' + ' '.join(sys.modules))); "
        "main()"
    )
    request = {
        "_LOCALQUEUE_COMPLETE": "complete_bash",
        "COMP_WORDS": f"localqueue queue inspect --store-path {store} q ",
        "COMP_CWORD": "6",
    }
    done = subprocess.run(
        [sys.executable, "-c", command],
        env=dict(os.environ, **request),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0 and re.fullmatch(r"1-[0-9a-f]{12}\n", done.stdout), done
    return set(done.stderr.splitlines()[-1].removeprefix("modules: ").split())


@pytest.fixture(scope="module")
def fast_path_imports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, set[str]]:
    store = tmp_path_factory.mktemp("budget") / "q.sqlite3"
    imports = {}
    for command in FAST_COMMANDS:
        argv = [*command, *ARGUMENTS[command], "--store-path", str(store)]
        imports[" ".join(command)] = _imported(argv)
    imports["a TAB"] = _imported_by_a_tab(store)  # the store holds the message add put
    return imports


def test_every_fast_command_is_measured() -> None:
    assert set(FAST_COMMANDS) == set(ARGUMENTS)


def test_fast_commands_stay_within_the_start_up_budget(
    fast_path_imports: dict[str, set[str]],
) -> None:
    over = {
        command: sorted({name.split(".")[0] for name in names} & OVER_BUDGET)
        for command, names in fast_path_imports.items()
    }
    assert over == {command: [] for command in fast_path_imports}


def test_start_up_tricks_live_only_on_the_fast_path(
    fast_path_imports: dict[str, set[str]],
) -> None:
    on_fast_path = set().union(*fast_path_imports.values())
    tricked = set()
    for path in PACKAGE.rglob("*.py"):
        if re.search(r"^TYPE_CHECKING = False", path.read_text(), re.M):
            parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
            tricked.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    assert tricked  # the scan found the fast path's own modules
    assert tricked - on_fast_path == set()
