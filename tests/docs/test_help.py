"""``--help`` that teaches: every command ends with one to three examples (the same as its
man page's EXAMPLES), every ``localqueue`` line in them is a valid command line, usage
lines read ``NAME`` and ``-- CMD [ARGS...]``, group listings keep whole summaries, and
read-only commands offer no ``--durability``. Short options are the long ones' twins."""

from __future__ import annotations

import json
import re
import shlex
import subprocess

import pytest

from localqueue.cli.examples import EXAMPLES, epilog

from .conftest import LOCALQUEUE, REPO

TREE = json.loads((REPO / "localqueue/cli/completion_tree.json").read_text())
PATHS = sorted(TREE)


def helps(path: str, env: dict[str, str]) -> str:
    result = subprocess.run(
        [LOCALQUEUE, *path.split(), "--help"],
        env=dict(env, COLUMNS="80"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p or "localqueue")
def test_help_ends_with_the_examples_of_the_man_page(path, env):
    assert 1 <= len(EXAMPLES[path]) <= 3
    text = helps(path, env)
    shown = "Examples:\n" + "".join(
        f"  {line}\n" if line else "\n" for line in str(epilog(path)).splitlines()
    )
    assert text.endswith(shown)
    page = (REPO / "man" / ("-".join(["localqueue", *path.split()]) + ".1")).read_text()
    section = page.split(".SH EXAMPLES\n")[1].split(".SH ")[0]
    roff = [line.replace("\\-", "-").replace("\\e", "\\") for line in section.splitlines()]
    for caption, lines in EXAMPLES[path]:
        assert (
            lines.splitlines()
            == roff[roff.index(lines.splitlines()[0]) :][: len(lines.splitlines())]
        )
        if caption:
            assert caption in roff


def localqueue_lines(shell: str) -> list[list[str]]:
    """The arguments of every ``localqueue`` command in a shell snippet (inside ``$(...)``,
    pipelines and lists too)."""
    shell = shell.replace("\\\n", " ")
    shell = re.sub(r"\$\((?!localqueue )[^()]*\)", "X", shell)  # other substitutions
    found = []
    for line in shell.splitlines():
        for match in re.finditer(r"(?:^|(?<=[\s(\"]))localqueue ", line):
            found.append(_arguments(line[match.end() :]))
    return found


def _arguments(rest: str) -> list[str]:
    """The words of ``rest`` up to the end of its simple command."""
    lexer = shlex.shlex(rest, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    args = []
    for token in lexer:
        if token and set(token) <= set("();<>|&"):
            break
        args.append(token)
    return args


EXAMPLE_LINES = [
    (path, args)
    for path, examples in EXAMPLES.items()
    for _, lines in examples
    for args in localqueue_lines(lines)
]


def test_every_command_has_examples_and_every_example_a_command():
    assert set(EXAMPLES) == set(TREE)
    assert {" ".join(args[:2]) for _, args in EXAMPLE_LINES} >= {"queue add", "queue exec"}


@pytest.mark.parametrize(("path", "args"), EXAMPLE_LINES, ids=lambda v: " ".join(v))
def test_every_localqueue_line_in_the_examples_parses(path, args):
    """Parsed by the real command tree (nothing runs), so a renamed flag fails here."""
    import typer
    from typer.main import get_command

    from localqueue.cli.app import build_app

    command = get_command(build_app())
    ctx = typer.Context(command, info_name="localqueue")
    words = list(args)
    while words and words[0] in getattr(command, "commands", {}):
        name = words.pop(0)
        command = command.commands[name]
        ctx = typer.Context(command, info_name=name, parent=ctx)
    assert not getattr(command, "commands", None) or not words, args
    command.make_context(command.name, words, parent=ctx.parent)


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p or "localqueue")
def test_usage_lines_have_no_braces(path, env):
    usage = helps(path, env).split("\n\n")[0]
    assert "{" not in usage and "}" not in usage, usage


def test_exec_usage_reads_name_then_the_command(env):
    usage = helps("queue exec", env).splitlines()[0]
    assert usage == "Usage: localqueue queue exec [OPTIONS] NAME -- CMD [ARGS...]"


@pytest.mark.parametrize("group", ["", "queue", "config", "store"], ids=lambda p: p or "top")
def test_group_listings_keep_whole_summaries(group, env):
    from localqueue.cli.help import summary

    listing = helps(group, env).split("Commands:\n")[1].split("\n\n")[0]
    assert "..." not in listing
    flat = " ".join(listing.split())
    for name in TREE[group]["commands"]:
        path = f"{group} {name}".strip()
        help_text = subprocess.run(
            [LOCALQUEUE, *path.split(), "--help"], capture_output=True, text=True, timeout=60
        ).stdout.split("\n\n")[1]
        assert f"{name} {summary(help_text)}" in flat


@pytest.mark.parametrize(
    "path",
    [
        "queue stats",
        "queue size",
        "queue inspect",
        "queue list",
        "queue dead",
        "queue wait",
        "store check",
    ],
)
def test_read_only_commands_take_no_durability(path, env):
    assert "--durability" not in helps(path, env)
    assert "--durability" not in TREE[path]["options"]


def test_short_options_are_the_long_ones(env, tmp_path):
    def cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [LOCALQUEUE, *args],
            env=env,
            cwd=tmp_path,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
        )

    assert cli("queue", "add", "q", stdin="1\n2\n3\n").returncode == 0
    leased = [cli("queue", "pop", "q").stdout for _ in range(3)]
    for line in leased:
        message = json.loads(line)
        cli("queue", "release", "q", message["id"])  # (released, not dead)
    assert cli("queue", "dead", "q", "-n", "1").returncode == 0
    assert TREE["queue dead"]["options"]["-n"] == TREE["queue dead"]["options"]["--limit"]
    store = str(tmp_path / "s.sqlite3")
    assert cli("queue", "add", "-s", store, "q", stdin="1\n2\n3\n").returncode == 0
    assert cli("queue", "size", "q", "-s", store).stdout == "3\n"
    drained = cli("queue", "exec", "-s", store, "q", "-n", "2", "--", "true")
    assert drained.returncode == 0, drained.stderr
    assert len(drained.stdout.splitlines()) == 2
    assert cli("queue", "size", "q", "-s", store).stdout == "1\n"
    assert "-s" in TREE["queue add"]["options"] and "-n" in TREE["queue process"]["options"]
