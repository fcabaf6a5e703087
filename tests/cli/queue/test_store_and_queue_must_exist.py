"""A wrong path or a typo in a queue name must never look like an empty queue.

Reading commands and workers on a store that does not exist exit 1 and create nothing
(only ``queue add`` creates a store); a queue name the store never held is a warning on
stderr naming the queues it knows, and with ``--strict`` (or ``strict: true``) exit 4.
"""

from __future__ import annotations

import pytest

from tests.cli.conftest import SUBPROCESS

pytestmark = SUBPROCESS

READERS = [
    ("queue", "stats", "q"),
    ("queue", "stats"),
    ("queue", "list"),
    ("queue", "size", "q"),
    ("queue", "dead", "q"),
    ("queue", "inspect", "q", "1-000000000000"),
    ("queue", "keep", "q"),
    ("queue", "history", "q"),
    ("queue", "log", "q", "1-000000000000"),
    ("queue", "pop", "q"),
    ("queue", "ack", "q", "1-000000000000"),
    ("queue", "release", "q", "1-000000000000"),
    ("queue", "wait", "q"),
    ("queue", "purge", "q", "--yes"),
    ("queue", "requeue-dead", "q", "--all"),
    ("queue", "pause", "q"),
    ("queue", "resume", "q"),
]
WORKERS = [
    ("queue", "exec", "q", "--", "true"),
    ("queue", "process", "q", "tests_handlers:ok"),
]


@pytest.mark.parametrize("argv", READERS + WORKERS, ids=lambda a: " ".join(a[1:3]))
def test_a_store_that_does_not_exist_is_exit_1_and_is_not_created(cli, argv):
    typo = cli.cwd / "typo.sqlite3"
    retries = cli.cwd / "retries.sqlite3"
    extra = ["--store-path", str(typo), "--retry-store-path", str(retries)]
    if argv in WORKERS:
        cut = argv.index("--") if "--" in argv else len(argv)
        args = [*argv[:cut], *extra, *argv[cut:]]
    else:
        args = [*argv, *extra[:2]]
    result = cli(*args, store=False)
    assert result.returncode == 1
    assert result.stderr == f"localqueue: error: no such store: {typo}\n"
    assert result.stdout == ""
    assert sorted(p.name for p in cli.cwd.iterdir()) == ["tests_handlers.py"]


def test_a_missing_lmdb_directory_is_no_such_store(cli):
    pytest.importorskip("lmdb")
    url = f"lmdb://{cli.cwd / 'typo-env'}"
    result = cli("queue", "stats", "q", "--store-path", url, store=False)
    assert (result.returncode, result.stderr) == (1, f"localqueue: error: no such store: {url}\n")
    assert not (cli.cwd / "typo-env").exists()
    assert (
        cli("queue", "add", "q", "--value", "1", "--store-path", url, store=False).returncode == 0
    )
    assert (cli.cwd / "typo-env" / "data.mdb").exists()


def test_only_queue_add_creates_the_store(cli):
    assert not cli.store.exists()
    cli.add("emails", 1)
    assert cli.store.exists()
    assert cli.stats("emails")["ready"] == 1


def test_list_shows_drained_queues_too(cli):
    cli.add("emails", 1)
    cli.add("hooks", 2)
    cli.json("queue", "process", "emails", "tests_handlers:ok")
    cli.json("queue", "purge", "hooks", "--yes")
    listed = cli.json("queue", "list")
    assert [(q["queue"], q["total"]) for q in listed] == [("emails", 0), ("hooks", 0)]
    assert [q["queue"] for q in cli.json("queue", "stats")] == ["emails", "hooks"]
    assert "drained ones too" in cli("queue", "list", "--help").stdout  # as it says


def _warning(cli, name):
    return f"localqueue: warning: no queue {name!r} in {cli.store} (queues: emails, hooks)\n"


@pytest.mark.parametrize(
    ("argv", "code"),
    [
        (("queue", "stats", "emials"), 0),
        (("queue", "size", "emials"), 0),
        (("queue", "dead", "emials"), 0),
        (("queue", "wait", "emials", "--timeout", "1"), 0),
        (("queue", "pop", "emials"), 3),
        (("queue", "pause", "emials"), 0),
        (("queue", "inspect", "emials", "1-000000000000"), 4),
        (("queue", "exec", "emials", "--", "true"), 0),
        (("queue", "process", "emials", "tests_handlers:ok"), 0),
    ],
    ids=lambda a: " ".join(a[1:2]) if isinstance(a, tuple) else str(a),
)
def test_a_queue_the_store_never_held_is_a_warning_naming_the_known_queues(cli, argv, code):
    cli.add("emails", 1)
    cli.empty_queue("hooks")
    result = cli(*argv)
    assert result.returncode == code
    assert result.stderr.startswith(_warning(cli, "emials")), result.stderr
    assert cli.stats("emails")["ready"] == 1  # the typo touched nothing
    known = cli(*[("emails" if a == "emials" else a) for a in argv])
    assert "warning" not in known.stderr


@pytest.mark.parametrize(
    "how", ["--strict", "LOCALQUEUE_STRICT=true", "strict: true", "config set strict true"]
)
def test_strict_makes_an_unknown_queue_exit_4_with_nothing_done(cli, home, monkeypatch, how):
    cli.add("emails", 1)
    cli.empty_queue("hooks")
    flags: list[str] = []
    if how == "--strict":
        flags = ["--strict"]
    elif how.startswith("LOCALQUEUE_STRICT"):
        monkeypatch.setenv("LOCALQUEUE_STRICT", "true")
    elif how == "strict: true":
        config = home / "xdg" / "localqueue" / "config.yaml"
        config.parent.mkdir(parents=True)
        config.write_text("strict: true\n")
    else:
        cli.json("config", "set", "strict", "true", store=False)
    commands = [("queue", "pop", "emials"), ("queue", "purge", "emials", "--yes")]
    if how != "--strict":  # the workers read the setting: no flag of their own needed
        commands.append(("queue", "exec", "emials", "--", "true"))
    for argv in commands:
        result = cli(*argv, *flags)
        assert result.returncode == 4, (argv, result.stderr)
        assert result.stderr == _warning(cli, "emials").replace("warning", "error"), argv
        assert result.stdout == ""
    assert cli("queue", "pop", "emails", *flags).returncode == 0
    assert cli("queue", "stats", "hooks", *flags).returncode == 0


def test_an_empty_store_says_it_holds_no_queues(cli):
    from localqueue.stores.sqlite import SQLiteQueueStore

    SQLiteQueueStore(cli.store).close()
    result = cli("queue", "size", "q")
    assert result.returncode == 0 and result.stdout == "0\n"
    assert (
        result.stderr == f"localqueue: warning: no queue 'q' in {cli.store} (it holds no queues)\n"
    )


# One usage error per command that opens a store: a bad queue name where it takes one.
USAGE_ERRORS = {
    "config init": ("config", "init", "extra"),
    "queue add": ("queue", "add", "", "--value", "1"),
    "queue ack": ("queue", "ack", "", "1-000000000000"),
    "queue dead": ("queue", "dead", "", "--limit", "1"),
    "queue delete": ("queue", "delete", "", "1-000000000000"),
    "queue exec": ("queue", "exec", "bad name", "--", "true"),
    "queue inspect": ("queue", "inspect", "", "1-000000000000"),
    "queue keep": ("queue", "keep", "", "7d"),
    "queue history": ("queue", "history", ""),
    "queue log": ("queue", "log", "", "1-000000000000"),
    "queue list": ("queue", "list", "extra"),
    "queue peek": ("queue", "peek", "q/x"),
    "queue pop": ("queue", "pop", ""),
    "queue process": ("queue", "process", "", "tests_handlers:ok"),
    "queue purge": ("queue", "purge", "", "--yes"),
    "queue release": ("queue", "release", "", "1-000000000000"),
    "queue requeue-dead": ("queue", "requeue-dead", "", "--all"),
    "queue size": ("queue", "size", ""),
    "queue stats": ("queue", "stats", "x" * 129),
    "queue wait": ("queue", "wait", ""),
    "queue pause": ("queue", "pause", ""),
    "queue resume": ("queue", "resume", "q/x"),
    "queue limit": ("queue", "limit", "q", "--rate", "5/d"),
    "store backup": ("store", "backup", "copy.sqlite3", "--durability", "sometimes"),
    "store check": ("store", "check", "extra"),
    "store vacuum": ("store", "vacuum", "--durability", "sometimes"),
    # and bad flags on commands that take a queue name
    "queue pop --timeout": ("queue", "pop", "q", "--block", "--timeout", "-1"),
    "queue peek --state": ("queue", "peek", "q", "--state", "sideways"),
    "queue release --delay": ("queue", "release", "q", "1-000000000000", "--delay", "-1"),
    "queue exec --timeout": ("queue", "exec", "q", "--timeout", "0", "--", "true"),
    "queue process handler": ("queue", "process", "q", "no_such_module:f"),
    "queue keep DURATION": ("queue", "keep", "q", "7x"),
    "queue history --since": ("queue", "history", "q", "--since", "yesterday"),
}


def test_every_command_with_a_store_has_a_usage_error_case():
    import json

    from localqueue.cli import complete

    with open(complete.TREE_FILE) as file:
        tree = json.load(file)
    with_store = {path for path, node in tree.items() if "--store-path" in node["options"]}
    assert with_store == {case for case in USAGE_ERRORS if case in tree}


@pytest.mark.parametrize("case", USAGE_ERRORS)
@pytest.mark.parametrize("store_option", ["--store-path", "-s"])  # fast path, and Typer's
def test_a_usage_error_is_exit_2_whether_or_not_the_store_exists(cli, case, store_option):
    """(``-s`` is an option the fast path leaves to Typer: both parsers are tried.)"""
    argv = USAGE_ERRORS[case]
    cli.add("q", 1)

    def run(store):
        extra = [store_option, str(store)]
        cut = argv.index("--") if "--" in argv else len(argv)
        return cli(*argv[:cut], *extra, *argv[cut:], store=False)

    existing = run(cli.store)
    missing = run(cli.cwd / "typo.sqlite3")
    assert (missing.returncode, missing.stdout) == (2, "")
    assert missing.stderr.startswith("localqueue: error: "), missing.stderr
    assert "no such store" not in missing.stderr
    assert (existing.returncode, existing.stderr) == (2, missing.stderr)
    assert sorted(p.name for p in cli.cwd.iterdir()) == ["tests_handlers.py"]
    assert cli.stats("q")["ready"] == 1
