"""What becomes of a `queue exec` job's output: shown on the worker's stderr, one job's
together; dropped; put in the outcome line; or handed on to the next queue (--to)."""

from __future__ import annotations

import json
import re

from tests.cli.conftest import SUBPROCESS

pytestmark = SUBPROCESS

JOB = (
    'for i in 1 2 3; do echo "$LOCALQUEUE_MESSAGE_ID out $i"; sleep 0.05; done;'
    ' echo "$LOCALQUEUE_MESSAGE_ID err" >&2'
)
DOUBLE = (
    'jq -c "if type == \\"object\\" then {doubled: (.n * 2)} else . end"'
    ' | sed "s/text/plain words/;s/^\\"//;s/\\"$//"'
)
COUNT = (
    'read n; i=0; while [ $i -lt $n ]; do echo "{\\"from\\": $n, \\"i\\": $i}";'
    " i=$((i+1)); done; echo progress >&2"
)


def test_job_output_goes_to_stderr_each_jobs_together_under_j4(cli):
    ids = cli.add("q", *range(8))
    result = cli("queue", "exec", "q", "-j", "4", "--", "sh", "-c", JOB)
    assert result.returncode == 0, result.stderr
    assert [json.loads(line)["status"] for line in result.stdout.splitlines()] == ["acked"] * 8
    lines = result.stderr.splitlines()
    assert len(lines) == 40
    for block in range(8):  # a header and 4 lines a job, never mixed with another job's
        header, *job = lines[block * 5 : block * 5 + 5]
        owner = job[0].split()[0]
        assert header == f"localqueue: output of {owner} (attempt 1, exit status 0):"
        assert job == [f"{owner} out 1", f"{owner} out 2", f"{owner} out 3", f"{owner} err"]
    assert sorted({line.split()[0] for line in lines if line[0] != "l"}) == sorted(ids)


def test_output_discard_shows_nothing(cli):
    cli.add("q", 1)
    result = cli("queue", "exec", "q", "--output", "discard", "--", "sh", "-c", JOB)
    assert result.returncode == 0 and result.stderr == ""


def test_output_json_puts_stdout_in_the_outcome_line(cli):
    cli.add("q", {"n": 1}, "text")
    lines = cli.json(
        "queue", "exec", "q", "--output", "json", "--", "sh", "-c",
        DOUBLE,
    )  # fmt: skip
    assert [line["output"] for line in lines] == [{"doubled": 2}, "plain words\n"]


def test_output_json_is_cut_at_the_output_limit_and_says_so(cli):
    cli.add("q", 1)
    [line] = cli.json(
        "queue", "exec", "q", "--output", "json", "--output-limit", "10", "--",
        "sh", "-c", "printf '0123456789abcdef'",
    )  # fmt: skip
    assert line["output"] == "0123456789[... 6 more bytes]"


def test_to_enqueues_each_json_line_in_the_next_queue(cli):
    cli.add("q", 2, 3)
    lines = cli.json(
        "queue", "exec", "q", "--to", "next", "--", "sh", "-c",
        COUNT,
    )  # fmt: skip
    assert [line["status"] for line in lines] == ["acked", "acked"]
    handed = cli.json("queue", "exec", "next", "--output", "json", "--", "cat")
    assert sorted((h["output"]["from"], h["output"]["i"]) for h in handed) == [
        (2, 0), (2, 1), (3, 0), (3, 1), (3, 2),
    ]  # fmt: skip
    assert cli.stats("q")["total"] == 0


def test_to_with_a_line_that_is_not_json_fails_the_attempt_and_puts_nothing(cli):
    cli.add("q", 1)
    [line] = cli.json(
        "queue", "exec", "q", "--to", "next", "--max-tries", "1", "--", "sh", "-c",
        'echo "{\\"ok\\": 1}"; echo "not json"', code=5,
    )  # fmt: skip
    assert line["status"] == "dead"
    assert line["error"]["type"] == "InvalidJobOutput"
    assert re.match(r"line 2 of the job's stdout is not JSON", line["error"]["message"])
    assert cli.stats("next")["total"] == 0  # all or nothing: the good line is not put


def test_output_json_and_to_together_are_a_usage_error(cli):
    result = cli("queue", "exec", "q", "--to", "n", "--output", "json", "--", "cat")
    assert result.returncode == 2
    assert "choose one" in result.stderr


def test_process_to_hands_on_the_return_value(cli):
    (cli.cwd / "stages.py").write_text(
        "def many(value):\n"
        "    return [value, value + 1]\n"
        "def gen(value):\n"
        "    yield {'v': value}\n"
        "def one(value):\n"
        "    return {'single': value}\n"
        "def nothing(value):\n"
        "    return None\n"
        "def bad(value):\n"
        "    return {1, 2}\n"
    )
    for handler, expected in [
        ("many", [10, 11]), ("gen", [{"v": 10}]), ("one", [{"single": 10}]), ("nothing", []),
    ]:  # fmt: skip
        cli.add("q", 10)
        cli.json("queue", "process", "q", f"stages:{handler}", "--to", f"out-{handler}")
        got = cli.json("queue", "exec", f"out-{handler}", "--output", "json", "--", "cat")
        assert [line["output"] for line in got] == expected, handler
    cli.add("q", 10)
    [line] = cli.json(
        "queue", "process", "q", "stages:bad", "--to", "out-bad", "--max-tries", "1", code=5
    )
    assert line["error"]["type"] == "TypeError"  # a set is not JSON: the attempt failed
