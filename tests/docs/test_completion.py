"""Shell completion, asked the way bash, zsh and fish ask it: ``localqueue`` run with
``_LOCALQUEUE_COMPLETE=complete_<shell>`` and the words in ``COMP_WORDS``/``COMP_CWORD``
(bash) or ``_TYPER_COMPLETE_ARGS`` (zsh, fish); then through the shipped scripts in real
shells."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from localqueue.cli import complete

from .conftest import LOCALQUEUE, REPO, make_store, needs

SHELLS = ["bash", "zsh", "fish"]


def ask(shell: str, line: str, env: dict[str, str], cwd: Path, action: str = "get-args"):
    """Run the completion request a shell sends for the command line ``line`` (the cursor at
    its end)."""
    request = dict(env, _LOCALQUEUE_COMPLETE=f"complete_{shell}")
    if shell == "bash":
        words = line.split(" ")
        request.update(COMP_WORDS=line, COMP_CWORD=str(len(words) - 1))
    else:
        request.update(_TYPER_COMPLETE_ARGS=line)
        if shell == "fish":
            request["_TYPER_COMPLETE_FISH_ACTION"] = action
    return subprocess.run(
        [LOCALQUEUE], env=request, cwd=cwd, capture_output=True, text=True, timeout=30
    )


def offered(shell: str, line: str, env: dict[str, str], cwd: Path) -> list[str]:
    """The values offered for ``line``, read back from the shell's own format."""
    result = ask(shell, line, env, cwd)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    if shell == "zsh":
        if result.stdout.strip() == "_files":
            return []
        body = re.fullmatch(r"_arguments '\*: :\(\((.*)\)\)'\n", result.stdout, re.S)
        assert body, result.stdout
        values = [re.match(r'"((?:[^"]|"")*)"', item).group(1) for item in body[1].split("\n")]
        return [value.replace("\\\\:", ":") for value in values]  # _arguments' escaped colon
    return [item.split("\t")[0] for item in result.stdout.splitlines()]


@pytest.fixture
def store(tmp_path: Path) -> Path:
    path = tmp_path / "q.sqlite3"
    make_store(path, {"emails": [{"to": "a@b.c"}], "webhooks": [1, 2], "reports": [3]})
    return path


@pytest.mark.parametrize("shell", SHELLS)
def test_queue_names_from_the_store(shell, store, env, tmp_path):
    commands = ["add", "size", "stats", "dead", "pop", "exec", "process", "purge", "wait"]
    for command in commands if shell == "bash" else ["add", "exec"]:  # same code path
        line = f"localqueue queue {command} --store-path {store} "
        assert offered(shell, line, env, tmp_path) == ["emails", "reports", "webhooks"]
    line = f"localqueue queue size --store-path {store} w"
    assert offered(shell, line, env, tmp_path) == ["webhooks"]


@pytest.mark.parametrize("shell", SHELLS)
def test_commands_and_options(shell, env, tmp_path):
    top = ["completion", "man", "queue", "config", "store"]
    assert offered(shell, "localqueue ", env, tmp_path) == top
    assert offered(shell, "localqueue queue re", env, tmp_path) == [
        "requeue-dead",
        "release",
        "resume",
    ]
    assert "--max-tries" in offered(shell, "localqueue queue exec q --max", env, tmp_path)
    durability = "localqueue queue add q --durability "
    assert offered(shell, durability, env, tmp_path) == ["full", "normal"]


def test_fish_is_args_tells_when_to_offer_files(store, env, tmp_path):
    """fish asks first whether there are completions: exit 1 lets it complete file names."""
    line = f"localqueue queue add --store-path {store} "
    assert ask("fish", line, env, tmp_path, action="is-args").returncode == 0
    line = "localqueue queue add q --store-path "
    assert ask("fish", line, env, tmp_path, action="is-args").returncode == 1


def test_bash_splits_option_values_at_equals(store, env, tmp_path):
    # bash hands `--store-path=X` over as three words: `--store-path`, `=`, `X`
    line = f"localqueue queue add --store-path = {store} "
    assert offered("bash", line, env, tmp_path) == ["emails", "reports", "webhooks"]
    line = f"localqueue queue add --store-path={store} "
    assert offered("zsh", line, env, tmp_path) == ["emails", "reports", "webhooks"]


def test_store_from_environment_config_file_and_default(store, env, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    line = "localqueue queue add "
    assert offered("bash", line, env, work) == []
    assert offered("bash", line, dict(env, LOCALQUEUE_STORE_PATH=str(store)), work) == [
        "emails",
        "reports",
        "webhooks",
    ]
    config = tmp_path / "home" / ".config" / "localqueue" / "config.yaml"
    config.parent.mkdir(parents=True)
    config.write_text(f"store_path: {store}\n")
    assert offered("bash", line, env, work) == ["emails", "reports", "webhooks"]
    config.unlink()
    make_store(work / "localqueue_queue.sqlite3", {"default-queue": [1]})
    assert offered("bash", line, env, work) == ["default-queue"]
    # the command line wins over everything
    line = f"localqueue queue add --store-path {store} "
    assert offered("bash", line, dict(env, LOCALQUEUE_STORE_PATH="nope"), work)[0] == "emails"


def test_message_ids_in_the_state_each_command_takes(tmp_path, env):
    from localqueue import PersistentQueue
    from localqueue.stores.sqlite import SQLiteQueueStore

    path = tmp_path / "q.sqlite3"
    ids = make_store(path, {"jobs": range(6), "other": [0]})["jobs"]
    with PersistentQueue("jobs", store=SQLiteQueueStore(str(path)), lease_timeout=300) as queue:
        leased = [queue.get_message(block=False) for _ in range(3)]
        queue.dead_letter(leased[0])
    prefix = f"localqueue queue {{}} --store-path {path} jobs "
    for shell in SHELLS:
        assert offered(shell, prefix.format("inspect"), env, tmp_path) == ids
        assert offered(shell, prefix.format("ack"), env, tmp_path) == ids[1:3]
        assert offered(shell, prefix.format("release"), env, tmp_path) == ids[1:3]
        assert offered(shell, prefix.format("requeue-dead"), env, tmp_path) == ids[:1]
        assert offered(shell, prefix.format("delete"), env, tmp_path) == ids
        # delete takes several: the ids already on the line are not offered again
        assert offered(shell, prefix.format("delete") + f"{ids[0]} ", env, tmp_path) == ids[1:]
    # a typed prefix narrows the ids down by sequence number
    seq = ids[4].split("-")[0]
    assert offered("bash", prefix.format("inspect") + seq, env, tmp_path) == [ids[4]]
    assert offered("bash", prefix.format("inspect") + ids[4][:-3], env, tmp_path) == [ids[4]]
    assert offered("bash", prefix.format("ack") + seq, env, tmp_path) == []


@pytest.mark.parametrize("shell", SHELLS)
def test_nothing_is_created_when_the_store_does_not_exist(shell, env, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    lines = [
        "localqueue queue add ",
        "localqueue queue inspect q ",
        f"localqueue queue add --store-path {work / 'named.sqlite3'} ",
    ]
    for line in lines:
        assert offered(shell, line, env, work) == []
    assert ask("fish", lines[0], env, work, action="is-args").returncode == 1
    assert os.listdir(work) == []
    assert os.listdir(tmp_path / "home") == []


def test_an_existing_store_is_only_read(store, env, tmp_path):
    before = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    for shell in SHELLS:
        offered(shell, f"localqueue queue ack --store-path {store} emails ", env, tmp_path)
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == before


@pytest.mark.parametrize(
    "store_path",
    ["garbage.sqlite3", "foreign.sqlite3", "a-directory", "lmdb://lmdb-dir", "postgresql://x/y"],
)
def test_a_store_that_cannot_be_read_completes_nothing_quietly(store_path, env, tmp_path):
    (tmp_path / "garbage.sqlite3").write_bytes(b"not a database at all" * 100)
    with sqlite3.connect(tmp_path / "foreign.sqlite3") as conn:
        conn.execute("CREATE TABLE notes (text TEXT)")
    conn.close()
    (tmp_path / "a-directory").mkdir()
    for shell in SHELLS:
        line = f"localqueue queue inspect --store-path {store_path} q "
        assert offered(shell, line, env, tmp_path) == []  # no traceback: stderr is empty


def test_a_broken_config_file_completes_nothing_quietly(env, tmp_path):
    config = tmp_path / "home" / ".config" / "localqueue" / "config.yaml"
    config.parent.mkdir(parents=True)
    config.write_text("store_path: [not, a, path\n")
    assert offered("bash", "localqueue queue add ", env, tmp_path) == []


@pytest.mark.parametrize("shell", SHELLS)
def test_a_corrupt_store_completes_nothing_and_says_why_only_under_localqueue_debug(
    shell, store, env, tmp_path
):
    with open(store, "r+b") as file:  # a real store whose header is overwritten
        file.write(b"not a database".ljust(100, b"\0"))
    nothing = "_files\n" if shell == "zsh" else ""  # zsh: "offer file names instead"
    for line in [
        f"localqueue queue add --store-path {store} ",  # queue names
        f"localqueue queue inspect --store-path {store} emails ",  # message ids
    ]:
        quiet = ask(shell, line, env, tmp_path)
        assert (quiet.returncode, quiet.stdout, quiet.stderr) == (0, nothing, "")
        told = ask(shell, line, dict(env, LOCALQUEUE_DEBUG="1"), tmp_path)
        assert (told.returncode, told.stdout) == (0, nothing)
        assert told.stderr == f"localqueue: completion: {store}: file is not a database\n"


def test_localqueue_debug_says_why_nothing_came_from_the_store(store, env, tmp_path):
    config = tmp_path / "broken" / "config.yaml"
    config.parent.mkdir()
    config.write_text("store_path: [not, a, path\n")
    why = {
        f"queue ack --store-path {store} nope ": f"{store}: queue 'nope' has no inflight "
        "message ids",
        f"queue add --store-path {tmp_path / 'none.sqlite3'} ": f"{tmp_path / 'none.sqlite3'}: "
        "no such store file",
        "queue add --store-path lmdb://dir ": "lmdb://dir: only SQLite stores are read to "
        "complete queue names and ids",
    }
    for line, reason in why.items():
        told = ask("bash", f"localqueue {line}", dict(env, LOCALQUEUE_DEBUG="1"), tmp_path)
        assert (told.returncode, told.stdout) == (0, "")
        assert told.stderr == f"localqueue: completion: {reason}\n"
    broken = dict(env, LOCALQUEUE_DEBUG="1", LOCALQUEUE_CONFIG=str(config))
    told = ask("bash", "localqueue queue add ", broken, tmp_path)
    assert told.stdout == "" and told.stderr.startswith("localqueue: completion: settings: ")
    assert told.stderr.count("\n") == 1  # the YAML error's lines joined in one


def test_a_malformed_request_completes_nothing_without_a_traceback(env, tmp_path):
    request = dict(env, _LOCALQUEUE_COMPLETE="complete_bash", COMP_WORDS="localqueue qu")
    for cword, debug in [("x", {}), ("x", {"LOCALQUEUE_DEBUG": "1"})]:
        result = subprocess.run(
            [LOCALQUEUE],
            env=dict(request, COMP_CWORD=cword, **debug),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert (result.returncode, result.stdout) == (0, "")
        if debug:
            assert result.stderr.startswith("localqueue: completion: ValueError: ")
            assert result.stderr.count("\n") == 1
        else:
            assert result.stderr == ""


STATIC_LINES = [
    ([], ""),
    ([], "--"),
    (["queue"], ""),
    (["queue"], "p"),
    (["queue"], "--"),
    (["config"], ""),
    (["config", "set"], "--"),
    (["store"], "ba"),
    (["queue", "add"], "--"),
    (["queue", "add", "q", "--value", "1"], "--"),
    (["queue", "exec", "q"], "--re"),
    (["queue", "requeue-dead", "--all"], "-"),
    (["store", "backup"], "-"),
]


@pytest.mark.parametrize(("args", "incomplete"), STATIC_LINES)
def test_commands_and_options_agree_with_typer(args, incomplete):
    """The static part of the answers is Typer's own (the tree is generated from it): the
    full Typer app asked the way bash asks, with Typer's completion classes (which any app
    with Typer's default ``add_completion`` registers)."""
    import typer
    from typer.main import get_command
    from typer.testing import CliRunner

    from localqueue.cli.app import build_app

    completing = typer.Typer()
    completing.command()(lambda: None)
    get_command(completing)  # registers Typer's bash/zsh/fish completion classes
    words = ["localqueue", *args, incomplete]
    request = {complete.ENV: "complete_bash", "COMP_WORDS": " ".join(words)}
    request["COMP_CWORD"] = str(len(words) - 1)
    typer_side = CliRunner().invoke(build_app(), [], prog_name="localqueue", env=request)
    assert typer_side.exit_code == 0, typer_side.output
    expected = typer_side.stdout.splitlines()
    ours = [value for value, _ in complete.complete(args, incomplete)]
    if incomplete.startswith("-"):  # option order is Click's set order: shells sort anyway
        ours, expected = sorted(ours), sorted(expected)
    assert ours == expected


# -- the shipped scripts in real shells ---------------------------------------------------


@needs("bash")
def test_bash_script_registers_and_completes(store, env, tmp_path):
    script = REPO / "completions" / "localqueue.bash"
    registered = subprocess.run(
        ["bash", "-c", f"source {script}; complete -p localqueue"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert registered.stdout.strip() == "complete -o default -F _localqueue_completion localqueue"
    tab = (
        f"source {script}; COMP_WORDS=(localqueue queue add ''); COMP_CWORD=3; "
        '_localqueue_completion localqueue; printf "%s\\n" "${COMPREPLY[@]}"'
    )
    result = subprocess.run(
        ["bash", "-c", tab],
        env=dict(env, LOCALQUEUE_STORE_PATH=str(store)),
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.split() == ["emails", "reports", "webhooks"]


@needs("zsh")
def test_zsh_script_sourced_and_autoloaded(store, env, tmp_path):
    script = REPO / "completions" / "_localqueue"
    assert script.read_text().startswith("#compdef localqueue\n")
    stub = '_arguments() { print -r -- "$@" }'  # prints what the completion function asks for
    sourced = (
        f"autoload -Uz compinit && compinit -u -D; source {script}; {stub}; "
        "words=(localqueue queue add ''); CURRENT=4; _localqueue_completion"
    )
    # autoloaded from $fpath, the first TAB completes at once (the loadautofunc guard)
    autoloaded = (
        f"fpath=({script.parent} $fpath); autoload -Uz _localqueue; {stub}; "
        "words=(localqueue queue add ''); CURRENT=4; _localqueue"
    )
    for code in (sourced, autoloaded):
        result = subprocess.run(
            ["zsh", "-f", "-c", code],
            env=dict(env, LOCALQUEUE_STORE_PATH=str(store)),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == '*: :(("emails" "reports" "webhooks"))'


@needs("fish")
def test_fish_script_completes(store, env, tmp_path):
    script = REPO / "completions" / "localqueue.fish"
    code = f"source {script}; complete -C 'localqueue queue add '; complete -C 'localqueue que'"
    result = subprocess.run(
        ["fish", "--no-config", "-c", code],
        env=dict(env, LOCALQUEUE_STORE_PATH=str(store)),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:3] == ["emails", "reports", "webhooks"]
    assert lines[3].startswith("queue\t")


# -- speed --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def big_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """100,000 messages in three queues; a few leased, one dead."""
    from localqueue import PersistentQueue
    from localqueue.stores.sqlite import SQLiteQueueStore

    path = tmp_path_factory.mktemp("big") / "big.sqlite3"
    chunk = [{"n": n} for n in range(10_000)]
    make_store(path, {"alpha": chunk * 4, "beta": chunk * 3, "gamma": chunk * 3})
    with PersistentQueue("gamma", store=SQLiteQueueStore(str(path)), lease_timeout=600) as q:
        leased = [q.get_message(block=False) for _ in range(6)]
        q.dead_letter(leased[0])
    return path


def fastest(runs: int, shell: str, line: str, env: dict[str, str], cwd: Path) -> float:
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        result = ask(shell, line, env, cwd)
        best = min(best, time.perf_counter() - start)
        assert result.returncode == 0 and result.stderr == "", result.stderr
    return best


@pytest.mark.slow
def test_completion_on_100k_messages(big_store, env, tmp_path):
    """Right answers from a big store through real shells. How fast is measured, not
    asserted (speed belongs to benchmarks): the timings are printed for the record, and
    the queries are checked to use the indexes rather than scan."""
    assert complete.queue_names(str(big_store)) == ["alpha", "beta", "gamma"]
    assert len(complete.message_ids(str(big_store), "alpha", None)) == complete.LIMIT
    assert len(complete.message_ids(str(big_store), "gamma", "inflight")) == 5
    lines = [
        f"localqueue queue add --store-path {big_store} ",
        f"localqueue queue inspect --store-path {big_store} beta ",
        f"localqueue queue ack --store-path {big_store} gamma ",
        f"localqueue queue requeue-dead --store-path {big_store} gamma ",
        f"localqueue queue release --store-path {big_store} alpha ",  # none leased: all scanned
    ]
    asked = [("bash", line) for line in lines] + [("zsh", lines[0]), ("zsh", lines[2])]
    for shell, line in asked:  # (the shells differ only in parsing and formatting)
        seconds = fastest(2, shell, line, env, tmp_path)
        print(f"{shell}: {line.split()[2]} {line.split()[-1]}: {seconds * 1000:.0f} ms")


def test_completion_imports_neither_typer_nor_the_queue(store, env, tmp_path):
    import sys

    request = dict(
        env,
        _LOCALQUEUE_COMPLETE="complete_bash",
        COMP_WORDS=f"localqueue queue ack --store-path {store} emails ",
        COMP_CWORD="6",
    )
    result = subprocess.run(
        [sys.executable, "-X", "importtime", LOCALQUEUE],
        env=request,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines()}
    assert "localqueue.cli.complete" in imported and "sqlite3" in imported
    # the queries come from the store module (its small completion section), not the queue
    assert not {"typer", "localqueue.queue"} & imported


# -- values, handlers and the command after `queue exec NAME --` --------------------------


@pytest.mark.parametrize("shell", SHELLS)
def test_config_set_offers_the_values_of_the_key(shell, env, tmp_path):
    assert offered(shell, "localqueue config set durability ", env, tmp_path) == ["full", "normal"]
    assert offered(shell, "localqueue config set durability n", env, tmp_path) == ["normal"]
    assert offered(shell, "localqueue config set lease_timeout ", env, tmp_path) == []


HANDLERS = (
    "def send(value):\n    pass\n\nasync def later(value):\n    pass\n\ndef _hidden():\n    pass\n"
)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A working directory with handler modules: jobs.py and the package app/."""
    work = tmp_path / "project"
    (work / "app").mkdir(parents=True)
    (work / "jobs.py").write_text(HANDLERS + "raise SystemExit('completion must not import')\n")
    (work / "app" / "__init__.py").write_text("")
    (work / "app" / "tasks.py").write_text(HANDLERS)
    (work / "notes.txt").write_text("")
    (work / "not-a-module.py").write_text("")
    return work


@pytest.mark.parametrize("shell", SHELLS)
def test_process_offers_modules_then_their_functions(shell, env, project):
    line = "localqueue queue process q "
    assert offered(shell, line, env, project) == ["app", "jobs"]
    assert offered(shell, line + "app.", env, project) == ["app.tasks"]
    if shell == "bash":  # bash splits `jobs:s` at the colon and replaces only what follows
        assert offered(shell, line + "jobs :", env, project) == ["send", "later"]
        assert offered(shell, line + "jobs : s", env, project) == ["send"]
    else:
        assert offered(shell, line + "jobs:", env, project) == ["jobs:send", "jobs:later"]
        assert offered(shell, line + "app.tasks:l", env, project) == ["app.tasks:later"]


def test_the_words_after_exec_dashdash_are_a_command_line(env, tmp_path):
    line = "localqueue queue exec q --max-tries 3 -- "
    for shell in ("bash", "fish"):
        assert ask(shell, line + "ls", env, tmp_path).stdout == "--command-at=7\n"
    assert ask("zsh", line + "ls", env, tmp_path).stdout == (
        "shift 7 words; (( CURRENT -= 7 )); _normal\n"
    )
    assert ask("fish", line, env, tmp_path, action="is-args").returncode == 0
    assert offered("bash", "localqueue queue exec q ", env, tmp_path) == []  # no `--` yet


@needs("bash")
@pytest.mark.skipif(
    not Path("/usr/share/bash-completion/bash_completion").exists(),
    reason="the bash-completion package is missing",
)
def test_bash_completes_the_command_as_sudo_does(env, tmp_path):
    script = REPO / "completions" / "localqueue.bash"
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "lq-test-job").write_text("#!/bin/sh\n")
    (tmp_path / "bin" / "lq-test-job").chmod(0o755)
    tab = (
        f"source /usr/share/bash-completion/bash_completion; source {script}; "
        "COMP_LINE='localqueue queue exec q -- lq-test-j'; COMP_POINT=${#COMP_LINE}; "
        "COMP_WORDS=(localqueue queue exec q -- lq-test-j); COMP_CWORD=5; "
        '_localqueue_completion localqueue; printf "%s\\n" "${COMPREPLY[@]}"'
    )
    path = f"{tmp_path / 'bin'}:{env['PATH']}"
    result = subprocess.run(
        ["bash", "-c", tab], env=dict(env, PATH=path), capture_output=True, text=True, timeout=30
    )
    assert result.stdout.split() == ["lq-test-job"], result.stderr


@needs("zsh")
def test_zsh_hands_the_command_to_normal(env, tmp_path):
    script = REPO / "completions" / "_localqueue"
    code = (
        f"fpath=({script.parent} $fpath); autoload -Uz _localqueue; "
        '_normal() { print -r -- $CURRENT "${words[@]}" }; '
        "words=(localqueue queue exec q -- ls -l); CURRENT=7; _localqueue"
    )
    result = subprocess.run(
        ["zsh", "-f", "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert result.stdout.strip() == "2 ls -l", result.stderr


@needs("fish")
def test_fish_completes_the_command_as_sudo_does(env, tmp_path):
    script = REPO / "completions" / "localqueue.fish"
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "lq-test-job").write_text("#!/bin/sh\n")
    (tmp_path / "bin" / "lq-test-job").chmod(0o755)
    code = f"source {script}; complete -C 'localqueue queue exec q -- lq-test-j'"
    path = f"{tmp_path / 'bin'}:{env['PATH']}"
    result = subprocess.run(
        ["fish", "--no-config", "-c", code],
        env=dict(env, PATH=path),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.stdout.split("\t")[0].strip() == "lq-test-job", result.stderr


@pytest.mark.parametrize("shell", SHELLS)
def test_man_and_completion_offer_commands_and_shells(shell, env, tmp_path):
    assert offered(shell, "localqueue man queue s", env, tmp_path) == ["size", "stats"]
    assert offered(shell, "localqueue man st", env, tmp_path) == ["store"]
    assert offered(shell, "localqueue completion ", env, tmp_path) == ["bash", "zsh", "fish"]


# -- TAB typed into an interactive bash ---------------------------------------------------


def tab_in_bash(line: str, env: dict[str, str], cwd: Path, rcfile: Path | None = None) -> str:
    """The command line an interactive bash shows after ``line`` and one TAB: typed into
    a real bash on a pseudo-terminal (its rc file: one that sources the shipped script, or
    ``rcfile``), which then prints the completed line, trailing space and all (Ctrl-A,
    ``echo DONE:'``, Ctrl-E, ``'``, Enter)."""
    import pty
    import select
    import signal

    if rcfile is None:
        rcfile = Path(env["HOME"]) / "tab.bashrc"
        rcfile.write_text(f"source {REPO / 'completions' / 'localqueue.bash'}\n")
    pid, fd = pty.fork()
    if pid == 0:  # the child: bash, reading the terminal
        try:
            os.chdir(cwd)
            os.execvpe("bash", ["bash", "--rcfile", str(rcfile), "-i"], dict(env, TERM="dumb"))
        finally:
            os._exit(127)  # never back into pytest
    output = b""
    try:
        os.write(fd, f"{line}\t\x01echo DONE:'\x05'\n".encode())  # quoted: spaces kept
        deadline = time.monotonic() + 30
        while (done := re.search(rb"\nDONE:([^\r\n]*)\r?\n", output)) is None:
            assert time.monotonic() < deadline, output
            if select.select([fd], [], [], 1)[0]:
                output += os.read(fd, 4096)
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(fd)
    return done[1].decode()


@needs("bash")
def test_bash_completes_module_colon_function_with_one_colon(env):
    line = "localqueue queue process q examples.email_worker:"
    assert tab_in_bash(line, env, REPO) == line + "send_email "
    line = "localqueue queue process q examples.email_worker:se"
    assert (
        tab_in_bash(line, env, REPO)
        == "localqueue queue process q examples.email_worker:send_email "
    )


@needs("bash")
def test_bash_completes_queue_names_after_s_as_after_store_path(store, env, tmp_path):
    (tmp_path / "urls.txt").write_text("")  # what bash offered before: a file name
    make_store(store, {"urgent": [1]})
    for option in ["-s", "--store-path"]:
        line = f"localqueue queue stats {option} {store} u"
        assert (
            tab_in_bash(line, env, tmp_path) == f"localqueue queue stats {option} {store} urgent "
        )
    for shell in SHELLS:
        assert offered(shell, f"localqueue queue size -s {store} ", env, tmp_path) == [
            "emails",
            "reports",
            "urgent",
            "webhooks",
        ]


@needs("bash")
def test_drained_queues_are_offered_as_queue_list_shows_them(store, env, tmp_path):
    from localqueue import PersistentQueue
    from localqueue.stores.sqlite import SQLiteQueueStore

    with PersistentQueue("webhooks", store=SQLiteQueueStore(str(store))) as queue:
        queue.purge()
    listed = subprocess.run(
        [LOCALQUEUE, "queue", "list", "-s", str(store)], env=env, capture_output=True, text=True
    )
    assert '"queue":"webhooks","ready":0' in listed.stdout
    line = f"localqueue queue size -s {store} w"
    assert tab_in_bash(line, env, tmp_path) == f"localqueue queue size -s {store} webhooks "
    for shell in SHELLS:
        assert offered(shell, f"localqueue queue size -s {store} ", env, tmp_path) == [
            "emails",
            "reports",
            "webhooks",
        ]


def test_a_version_1_store_offers_the_queues_holding_messages(store, env, tmp_path):
    """(A version 1 file had no table of queue names; completion reads it as it is.)"""
    conn = sqlite3.connect(store)
    conn.executescript("DROP TABLE queues; DROP TRIGGER messages_queue_known")
    conn.execute("PRAGMA user_version = 1")
    conn.close()
    line = f"localqueue queue size --store-path {store} "
    assert offered("bash", line, env, tmp_path) == ["emails", "reports", "webhooks"]
    assert offered("bash", line + "r", env, tmp_path) == ["reports"]


@needs("bash")
@pytest.mark.parametrize("loaded", [True, False])
def test_bash_install_says_how_to_load_the_script_when_bash_completion_is_not_loaded(
    loaded, store, env, tmp_path
):
    """bash-completion sets BASH_COMPLETION_VERSINFO when a session loads it: the
    ~/.bashrc here sets it as a stand-in for the package, or unsets it (also where
    /etc/bash.bashrc loads the package) for a machine without it."""
    bashrc = Path(env["HOME"]) / ".bashrc"
    bashrc.write_text(
        "BASH_COMPLETION_VERSINFO=(2 11)\n" if loaded else "unset BASH_COMPLETION_VERSINFO\n"
    )
    installed = Path(env["HOME"]) / ".local/share/bash-completion/completions/localqueue"
    result = subprocess.run(
        [LOCALQUEUE, "completion", "--install", "bash"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (result.returncode, result.stdout) == (0, "")
    assert installed.read_bytes() == (REPO / "completions" / "localqueue.bash").read_bytes()
    told = result.stderr.splitlines()
    assert told[0] == f"localqueue: wrote {installed}"
    if loaded:
        assert told[1:] == [
            "localqueue: new bash sessions load it (through the bash-completion package)"
        ]
        return
    assert "do not load the bash-completion package" in told[1]
    assert told[2:] == [f"  source {installed}"]
    # the line, added to ~/.bashrc, makes TAB work in a new interactive bash
    with bashrc.open("a") as rc:
        rc.write(told[2].strip() + "\n")
    line = f"localqueue queue add -s {store} em"
    completed = tab_in_bash(line, dict(env, LOCALQUEUE_STORE_PATH=str(store)), tmp_path, bashrc)
    assert completed == f"localqueue queue add -s {store} emails "
