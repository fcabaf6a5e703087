"""``queue process NAME path/to/file.py:function`` imports the handler file by path."""

from __future__ import annotations

import os

import pytest

from tests.cli.conftest import SUBPROCESS

pytestmark = SUBPROCESS

SEND = """
from helpers import mark   # a neighbour of this file, importable as from a script


def handle(value):
    mark(value)
"""
HELPERS = """
import os


def mark(value):
    with open(os.environ["MARKS"], "a") as marks:
        marks.write(f"{value}\\n")
"""


@pytest.mark.parametrize("spec", ["./jobs/send.py:handle", "jobs/send.py:handle", "ABSOLUTE"])
def test_a_handler_given_as_a_file_is_imported_by_path(cli, monkeypatch, spec):
    jobs = cli.cwd / "jobs"  # not a package: no __init__.py, not on sys.path
    jobs.mkdir()
    (jobs / "send.py").write_text(SEND)
    (jobs / "helpers.py").write_text(HELPERS)
    marks = cli.cwd / "marks.txt"
    monkeypatch.setenv("MARKS", str(marks))
    if spec == "ABSOLUTE":
        spec = f"{jobs / 'send.py'}:handle"
    cli.add("q", 1, 2)
    lines = cli.json("queue", "process", "q", spec)
    assert [line["status"] for line in lines] == ["acked", "acked"]
    assert marks.read_text() == "1\n2\n"


def test_module_function_works_as_before(cli):
    cli.add("q", 1)
    [line] = cli.json("queue", "process", "q", "tests_handlers:ok")
    assert line["status"] == "acked"


@pytest.mark.parametrize(
    ("source", "spec", "message"),
    [
        ("def handle(value):\n    pass\n", "./missing.py:handle", "no such file"),
        ("import no_such_module_here\n", "./broken.py:handle", "No module named"),
        ("def handle(value) pass\n", "./broken.py:handle", "SyntaxError"),
        ("def other(value):\n    pass\n", "./broken.py:handle", "has no attribute 'handle'"),
        ("handle = 42\n", "./broken.py:handle", "is not callable"),
    ],
)
def test_an_unimportable_handler_file_exits_2_with_the_import_error(cli, source, spec, message):
    (cli.cwd / "broken.py").write_text(source)
    cli.add("q", 1)
    result = cli("queue", "process", "q", spec)
    assert result.returncode == 2
    assert result.stderr.startswith("localqueue: error: "), result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert cli.stats("q")["ready"] == 1  # nothing leased


@pytest.mark.parametrize("spec", ["deep:f", "top:f", "./deep.py:f", "ABSOLUTE"])
def test_a_handler_that_raises_on_import_names_the_file_and_line(cli, spec):
    deep = 'import os\n\nsettings = {}["x"]\n\n\ndef f(value):\n    pass\n'  # raises at line 3
    (cli.cwd / "deep.py").write_text(deep)
    (cli.cwd / "top.py").write_text("from deep import f\n")  # raised one import further down
    if spec == "ABSOLUTE":
        spec = f"{cli.cwd / 'deep.py'}:f"
    cli.add("q", 1)
    result = cli("queue", "process", "q", spec)
    assert result.returncode == 2
    module = spec.rpartition(":")[0]
    assert result.stderr == (
        f"localqueue: error: cannot import {module!r}: KeyError: 'x' (raised at deep.py, line 3)\n"
    )
    told = cli("queue", "process", "q", spec, env={**os.environ, "LOCALQUEUE_DEBUG": "1"})
    assert told.returncode == 2
    assert f'File "{cli.cwd / "deep.py"}", line 3, in <module>' in told.stderr  # the traceback
    assert cli.stats("q")["ready"] == 1  # nothing leased
