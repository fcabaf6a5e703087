"""``queue add``: --value, JSON Lines batches in one transaction, --raw, --delay, errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.cli.conftest import LOCALQUEUE, SUBPROCESS

pytestmark = SUBPROCESS


def test_value_prints_the_message_and_enqueues_it(cli):
    [message] = cli.json("queue", "add", "emails", "--value", '{"to":"user@example.com"}')
    assert message["value"] == {"to": "user@example.com"}
    assert message["queue"] == "emails"
    assert message["state"] == "ready"
    assert message["attempts"] == 0
    assert cli.stats("emails")["ready"] == 1


def test_stdin_json_lines_one_message_per_non_blank_line(cli):
    messages = cli.json("queue", "add", "q", stdin='{"a":1}\n\n  \n[1,2]\n"s"\n7')
    assert [m["value"] for m in messages] == [{"a": 1}, [1, 2], "s", 7]
    assert len({m["id"] for m in messages}) == 4
    assert cli.stats("q")["ready"] == 4


def test_bad_third_line_exits_65_names_it_and_enqueues_nothing(cli):
    result = cli("queue", "add", "q", stdin='{"a":1}\n{"b":2}\n{oops\n{"c":3}\n')
    assert result.returncode == 65
    assert result.stdout == ""
    assert result.stderr.startswith("localqueue: error: stdin line 3, column 2: invalid JSON: ")
    assert result.stderr.count("line") == 1  # the parser's own "line 1" is not repeated
    assert not cli.store.exists()  # nothing was written, not even a store


def test_bad_value_names_its_line_and_column(cli):
    result = cli("queue", "add", "q", "--value", '{"a": 1,\n "b": oops}')
    assert result.returncode == 65
    assert result.stderr.startswith("localqueue: error: --value line 2, column 7: invalid JSON: ")
    assert not cli.store.exists()


@pytest.mark.parametrize(
    "line", ["NaN", "[Infinity]", "123456789012345678901234567890", '{"a":1', "\ufffd"]
)
def test_values_json_cannot_hold_exactly_are_invalid_input(cli, line):
    result = cli("queue", "add", "q", stdin='"ok"\n' + line + "\n")
    assert result.returncode == 65, result.stderr
    assert result.stderr.startswith("localqueue: error: stdin line 2")
    assert not cli.store.exists()  # nothing was written, not even a store


def test_invalid_value_option_exits_65(cli):
    result = cli("queue", "add", "q", "--value", "{not json")
    assert result.returncode == 65
    assert "--value" in result.stderr


def test_raw_stores_each_line_as_a_string(cli):
    [one] = cli.json("queue", "add", "q", "--value", "user@example.com", "--raw")
    assert one["value"] == "user@example.com"
    many = cli.json("queue", "add", "q", "--raw", stdin="a b\r\n{not json}\n\n")
    assert [m["value"] for m in many] == ["a b", "{not json}"]


def test_delay_makes_messages_delayed(cli):
    [message] = cli.json("queue", "add", "q", "--value", "1", "--delay", "60")
    assert message["state"] == "delayed"
    assert message["available_at"] >= message["enqueued_at"] + 59
    assert cli.stats("q")["delayed"] == 1


@pytest.mark.parametrize("delay", ["-1", "nan"])
def test_negative_delay_is_a_usage_error(cli, delay):
    result = cli("queue", "add", "q", "--value", "1", f"--delay={delay}")
    assert result.returncode == 2
    assert not cli.store.exists()  # nothing was written, not even a store


def test_invalid_queue_name_is_a_usage_error(cli):
    result = cli("queue", "add", "no spaces", "--value", "1")
    assert result.returncode == 2
    assert "invalid queue name" in result.stderr


def test_unknown_option_is_a_usage_error_without_traceback(cli):
    result = cli("queue", "add", "q", "--bogus")
    assert result.returncode == 2
    assert "localqueue: error:" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("store_option", ["--store-path", "-s"])  # fast path, and Typer's
def test_empty_stdin_enqueues_nothing_and_says_so_unless_quiet(cli, store_option):
    for stdin in ["", "\n\n", "  \n"]:  # `echo '' | ...`, a cron line without --value
        args = ("queue", "add", "q", store_option, str(cli.store))
        result = cli(*args, stdin=stdin, store=False)
        assert (result.returncode, result.stdout) == (0, "")
        assert result.stderr == "localqueue: warning: no messages on stdin; nothing enqueued\n"
        quiet = cli(*args, "-q", stdin=stdin, store=False)
        assert (quiet.returncode, quiet.stdout, quiet.stderr) == (0, "", "")
    assert not cli.store.exists()


TYPO = (
    "localqueue: warning: queue 'emials' is new: did you mean 'emails'?"
    " (--strict refuses new queues)\n"
)


@pytest.mark.parametrize("store_option", ["--store-path", "-s"])
def test_a_new_queue_close_to_a_known_one_is_enqueued_with_a_warning(cli, store_option):
    cli.add("emails", 1)
    cli.add("hooks", 1)

    def add(name):
        result = cli(
            "queue", "add", name, "--value", "2", store_option, str(cli.store), store=False
        )
        assert result.returncode == 0 and len(result.stdout.splitlines()) == 1
        return result.stderr

    assert add("emials") == TYPO
    assert add("emials") == ""  # held now: no typo any more
    assert add("emails") == ""
    assert add("reports") == ""  # new, and like no known queue: a new queue is normal
    assert [cli.stats(q)["ready"] for q in ("emails", "emials", "reports")] == [2, 2, 1]


@pytest.mark.parametrize("how", ["--strict", "-s --strict", "LOCALQUEUE_STRICT", "strict: true"])
def test_strict_refuses_a_queue_the_store_never_held_with_nothing_written(cli, home, how):
    cli.add("emails", 1)
    cli.empty_queue("hooks")
    env = dict(os.environ)
    store_option, strict = ("-s", ["--strict"]) if how == "-s --strict" else ("--store-path", [])
    config = home / "xdg" / "localqueue" / "config.yaml"
    if how == "--strict":
        strict = ["--strict"]
    elif how == "LOCALQUEUE_STRICT":
        env["LOCALQUEUE_STRICT"] = "true"
    elif how == "strict: true":
        config.parent.mkdir(parents=True)
        config.write_text("strict: true\n")

    def add(name, store=cli.store):
        argv = ("queue", "add", name, "--value", "3", store_option, str(store), *strict)
        return cli(*argv, store=False, env=env)

    for name in ["emials", "reports"]:  # close to a known queue, or not
        refused = add(name)
        assert (refused.returncode, refused.stdout) == (4, "")
        assert refused.stderr == (
            f"localqueue: error: no queue {name!r} in {cli.store} (queues: emails, hooks)\n"
        )
    assert add("hooks").returncode == 0 and add("emails").returncode == 0
    assert [m["queue"] for m in cli.json("queue", "list")] == ["emails", "hooks"]
    assert cli.stats("emails")["ready"] == 2
    # a store that does not exist holds no queue: refused, and not created
    missing = add("emails", store=cli.cwd / "typo.sqlite3")
    assert (missing.returncode, missing.stdout) == (1, "")
    assert missing.stderr == f"localqueue: error: no such store: {cli.cwd / 'typo.sqlite3'}\n"
    assert not (cli.cwd / "typo.sqlite3").exists()
    # strict off: the new queue is made
    config.unlink(missing_ok=True)
    made = cli("queue", "add", "reports", "--value", "3")
    assert made.returncode == 0 and cli.stats("reports")["ready"] == 1


def test_terminal_on_stdin_without_value_is_a_usage_error(cli):
    pty = pytest.importorskip("pty")
    leader, follower = pty.openpty()
    try:
        result = subprocess.run(
            [LOCALQUEUE, "queue", "add", "q", "--store-path", str(cli.store)],
            stdin=follower,
            capture_output=True,
            text=True,
            timeout=30,
        )
    finally:
        import os

        os.close(leader)
        os.close(follower)
    assert result.returncode == 2
    assert "stdin is a terminal" in result.stderr


def test_stdout_is_compact_json_lines(cli):
    result = cli("queue", "add", "q", "--value", '{"a": [1, 2]}')
    [line] = result.stdout.splitlines()
    assert ": " not in line and ", " not in line
    assert json.loads(line)["value"] == {"a": [1, 2]}


def test_add_does_not_import_heavy_modules(cli):
    """The hot path of shell loops: no typer, tenacity, yaml, rich or pydantic."""
    code = (
        "import sys\n"
        "from localqueue.cli.app import run\n"
        "code = run(['queue', 'add', 'q', '--value', '{}', '--store-path', sys.argv[1]])\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules}"
        " & {'typer', 'click', 'tenacity', 'yaml', 'rich', 'pydantic'})\n"
        "print(code, ','.join(heavy), file=sys.stderr)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(cli.store)], capture_output=True, text=True, check=True
    )
    assert result.stderr.strip() == "0"  # exit 0 and nothing heavy
    # With a config file, yaml is read -- and still nothing else heavy.
    config = cli.cwd.parent / "xdg" / "localqueue" / "config.yaml"
    config.parent.mkdir(parents=True)
    config.write_text("durability: full\n")
    result = subprocess.run(
        [sys.executable, "-c", code, str(cli.store)], capture_output=True, text=True, check=True
    )
    assert result.stderr.strip() == "0 yaml"


def test_a_closed_stdout_is_refused_before_anything_is_written(cli):
    command = f'"{LOCALQUEUE}" queue add q --value 1 --store-path "{cli.store}" >&-'
    result = subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr.startswith("localqueue: error: stdout is closed"), result.stderr
    assert not cli.store.exists()
    quiet = f'"{LOCALQUEUE}" queue add q --value 1 --quiet --store-path "{cli.store}" >&-'
    result = subprocess.run(["sh", "-c", quiet], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert cli.stats("q")["ready"] == 1


def test_output_lost_after_the_commit_exits_7_and_says_it_was_enqueued(cli):
    """A full disk under stdout: the messages are committed, so exit 1 ("nothing was
    written") would make a retrying script enqueue them twice."""
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full on this system")
    command = f'"{LOCALQUEUE}" queue add q --store-path "{cli.store}" >/dev/full'
    result = subprocess.run(
        ["sh", "-c", command], input="1\n2\n", capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 7
    assert result.stderr.startswith("localqueue: error: cannot write to stdout: No space left")
    assert "2 message(s) WERE enqueued" in result.stderr
    assert "Traceback" not in result.stderr
    assert cli.stats("q")["ready"] == 2


def test_a_reader_that_stops_after_the_commit_is_exit_0_under_pipefail(cli):
    """`queue add | head -1` under `set -o pipefail`: every message is committed and
    the consumer chose to stop reading, so the pipeline must not fail (and be retried)."""
    lines = "".join(f"{i}\n" for i in range(20000))
    command = f'set -o pipefail; "{LOCALQUEUE}" queue add q --store-path "{cli.store}" | head -1'
    pipeline = subprocess.run(
        ["bash", "-c", command], input=lines, capture_output=True, text=True, timeout=60
    )
    assert pipeline.returncode == 0, pipeline.stderr
    assert len(pipeline.stdout.splitlines()) == 1
    assert pipeline.stderr == ""
    assert cli.stats("q")["ready"] == 20000


def test_quiet_prints_nothing_and_ids_prints_only_ids(cli):
    quiet = cli("queue", "add", "q", "-q", stdin="1\n2\n")
    assert quiet.returncode == 0 and quiet.stdout == "" and quiet.stderr == ""
    ids = cli("queue", "add", "q", "--ids", stdin="3\n4\n")
    assert ids.returncode == 0, ids.stderr
    lines = ids.stdout.splitlines()
    assert len(lines) == 2
    assert [cli.json("queue", "inspect", "q", i)[0]["value"] for i in lines] == [3, 4]
    assert cli("queue", "add", "q", "-q", "--ids", "--value", "1").returncode == 2


def test_value_while_stdin_has_data_is_a_usage_error(cli):
    """`producer | localqueue queue add q --value X` would drop the producer's lines."""
    result = cli("queue", "add", "q", "--value", "1", stdin='{"from":"stdin"}\n')
    assert result.returncode == 2
    assert "--value given and stdin has data too" in result.stderr
    assert not cli.store.exists()
    data = cli.cwd / "lines.jsonl"
    data.write_text("2\n")
    command = f'"{LOCALQUEUE}" queue add q --value 1 --store-path "{cli.store}" < "{data}"'
    from_file = subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=60)
    assert from_file.returncode == 2, from_file.stderr
    assert not cli.store.exists()
    # stdin without data (empty, /dev/null as under cron) is fine
    assert cli("queue", "add", "q", "--value", "1").returncode == 0
    nothing = f'"{LOCALQUEUE}" queue add q --value 2 --store-path "{cli.store}" </dev/null'
    assert subprocess.run(["sh", "-c", nothing], timeout=60).returncode == 0
    assert cli.stats("q")["ready"] == 2
