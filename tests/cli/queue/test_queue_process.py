"""``queue process``: Python handlers, retry budget, dead letters, drain/max-jobs modes."""

from __future__ import annotations

import json
import sqlite3

import pytest

from tests.cli.conftest import REPO, SUBPROCESS, untimed

pytestmark = SUBPROCESS


def test_seed_quickstart(cli, tmp_path):
    """The seed's Quickstart, run from the repository root as it says."""
    demo, retries = tmp_path / "localqueue-demo", tmp_path / "localqueue-demo-retries.sqlite3"
    add = cli(
        "queue", "add", "emails", "--store-path", str(demo),
        "--value", '{"to":"user@example.com"}', store=False, cwd=REPO,
    )  # fmt: skip
    assert add.returncode == 0, add.stderr
    [added] = [json.loads(line) for line in add.stdout.splitlines()]
    process = cli(
        "queue", "process", "emails", "examples.email_worker:send_email",
        "--store-path", str(demo), "--retry-store-path", str(retries),
        "--worker-id", "worker-1", "--max-tries", "3", store=False, cwd=REPO,
    )  # fmt: skip
    assert process.returncode == 0, process.stderr
    assert [untimed(json.loads(line)) for line in process.stdout.splitlines()] == [
        {"id": added["id"], "queue": "emails", "status": "acked", "attempts": 1, "error": None}
    ]
    assert "user@example.com" in process.stderr  # the example reports on stderr
    inspect = cli("queue", "inspect", "emails", added["id"], "--store-path", str(demo), store=False)
    assert inspect.returncode == 4  # acked: gone


def test_drains_what_is_ready_and_exits_0(cli):
    ids = cli.add("q", 1, 2, 3)
    lines = cli.json("queue", "process", "q", "tests_handlers:ok")
    assert [(line["id"], line["status"]) for line in lines] == [(i, "acked") for i in ids]
    assert cli.stats("q")["total"] == 0


def test_empty_queue_is_not_an_error_and_a_drain_does_not_idle(cli):
    cli.empty_queue("q")
    result = cli("queue", "process", "q", "tests_handlers:ok", timeout=60)
    assert result.returncode == 0
    assert result.stdout == ""


def test_idle_sleep_without_forever_is_a_usage_error(cli):
    # --idle-sleep applies to --forever alone: anywhere else it would be silently ignored.
    for extra in ([], ["--block"], ["--forever", "--block"]):
        result = cli("queue", "process", "q", "tests_handlers:ok", "--idle-sleep", "5", *extra)
        assert result.returncode == 2
        assert "--idle-sleep needs --forever" in result.stderr


def test_max_jobs_stops_after_n(cli):
    cli.add("q", 1, 2, 3)
    assert len(cli.json("queue", "process", "q", "tests_handlers:ok", "--max-jobs", "2")) == 2
    stats = cli.stats("q")
    assert (stats["ready"], stats["inflight"], stats["total"]) == (1, 0, 1)


def test_a_drain_leaves_no_lease_and_no_attempt_record_behind(cli):
    """Acks lease the next message and attempt records are forgotten a step late: at
    the end nothing may be left held, and the retry store must be empty."""
    import sqlite3

    cli.add("q", 1, 2, 3)
    lines = cli.json("queue", "process", "q", "tests_handlers:ok")
    assert [line["status"] for line in lines] == ["acked"] * 3
    assert cli.stats("q")["total"] == 0
    with sqlite3.connect(cli.retries) as retries:
        assert retries.execute("SELECT count(*) FROM attempts").fetchone() == (0,)


def test_failures_release_until_max_tries_then_dead_letter_with_the_handlers_error(cli):
    [added] = cli.add("q", 7)
    lines = cli.json(
        "queue", "process", "q", "tests_handlers:fail", "--max-tries", "3",
        "--release-delay", "0", code=5,
    )  # fmt: skip
    assert [line["status"] for line in lines] == ["released", "released", "dead"]
    assert [line["attempts"] for line in lines] == [1, 2, 3]
    assert lines[-1]["error"] == {
        "type": "RuntimeError",
        "module": "builtins",
        "message": "handler failed on 7",
    }
    [dead] = cli.json("queue", "dead", "q")
    assert dead["id"] == added
    assert dead["last_error"]["message"] == "handler failed on 7"


def test_release_delay_holds_failed_messages_back(cli):
    cli.add("q", 1)
    [line] = cli.json(
        "queue", "process", "q", "tests_handlers:fail", "--max-tries", "5",
        "--release-delay", "60",
    )  # fmt: skip
    assert line["status"] == "released"
    assert cli.stats("q")["delayed"] == 1


def test_exponential_backoff_doubles_the_release_delay(cli):
    [added] = cli.add("q", 1)
    lines = cli.json(
        "queue", "process", "q", "tests_handlers:fail", "--max-tries", "5", "--block",
        "--max-jobs", "2", "--backoff", "exponential", "--release-delay", "0.1",
    )  # fmt: skip
    assert [line["status"] for line in lines] == ["released", "released"]
    [message] = cli.json("queue", "inspect", "q", added)
    # 0.1 doubled once, plus jitter of up to the release delay itself (never less)
    assert 0.2 - 0.01 <= message["available_at"] - message["failed_at"] <= 0.3 + 0.01


def _waits(flags, attempts):
    import tenacity

    strategy = flags.wait()
    waits = []
    for attempt in attempts:
        state = tenacity.RetryCallState(tenacity.Retrying(), None, (), {})
        state.attempt_number = attempt
        waits.append(strategy(state))
    return waits


def test_retry_waits_are_tenacity_strategies_fixed_or_doubling_with_a_cap():
    from localqueue.cli.worker import WorkerFlags

    assert _waits(WorkerFlags(backoff="fixed", release_delay=5), (1, 2, 3)) == [5, 5, 5]
    exponential = WorkerFlags(backoff="exponential", release_delay=1, max_delay=6)
    for _ in range(20):  # jitter only adds, up to a second
        waits = _waits(exponential, (1, 2, 3, 4, 5))
        for wait, floor in zip(waits, [1, 2, 4, 6, 6], strict=True):
            assert floor <= wait <= floor + 1


def test_default_retry_wait_starts_at_a_second_and_doubles_to_five_minutes():
    from localqueue.cli.worker import WorkerFlags

    for _ in range(20):
        waits = _waits(WorkerFlags(), (1, 2, 3, 9, 10, 30))
        for wait, floor in zip(waits, [1, 2, 4, 256, 300, 300], strict=True):
            assert floor <= wait <= floor + 1
    assert _waits(WorkerFlags(release_delay=0), (1, 2, 5)) == [0, 0, 0]


def test_a_failed_message_waits_a_second_by_default(cli):
    [added] = cli.add("q", 1)
    [line] = cli.json("queue", "process", "q", "tests_handlers:fail", code=6)
    assert line["status"] == "released"
    [message] = cli.json("queue", "inspect", "q", added)
    assert message["state"] == "delayed"
    assert 1.0 - 0.01 <= message["available_at"] - message["failed_at"] <= 2.0 + 0.01


def test_flaky_handler_is_acked_on_the_second_attempt(cli, tmp_path):
    cli.add("q", {"marker": str(tmp_path / "marker")})
    lines = cli.json("queue", "process", "q", "tests_handlers:flaky", "--release-delay", "0")
    assert [line["status"] for line in lines] == ["released", "acked"]
    assert lines[0]["error"]["type"] == "ConnectionError"


def test_no_dead_letter_releases_when_the_budget_is_spent_and_the_drain_ends(cli):
    cli.add("q", 1)
    lines = cli.json(
        "queue", "process", "q", "tests_handlers:fail", "--max-tries", "2", "--no-dead-letter",
        "--release-delay", "0",
    )  # fmt: skip
    assert [line["status"] for line in lines] == ["released", "released"]
    assert cli.stats("q")["ready"] == 1
    assert cli.stats("q")["dead"] == 0
    # ...with a fresh budget: the next run tries it max-tries times again.
    again = cli.json(
        "queue", "process", "q", "tests_handlers:fail", "--max-tries", "2", "--no-dead-letter",
        "--release-delay", "0",
    )  # fmt: skip
    assert len(again) == 2


def test_a_handler_that_kills_its_process_still_reaches_dead_letter(cli):
    """Poison-message protection: the attempt is counted before the handler runs."""
    cli.add("q", 1)
    args = ("--max-tries", "2", "--lease-timeout", "1", "--block", "--max-jobs", "1")
    for _ in range(2):  # each delivery kills the worker; --block waits out the lease
        assert cli("queue", "process", "q", "tests_handlers:crash", *args).returncode == 9
    lines = cli.json("queue", "process", "q", "tests_handlers:crash", *args)
    assert [line["status"] for line in lines] == ["dead"]
    assert lines[0]["error"]["type"] == "RetryBudgetExhausted"


def test_what_a_handler_prints_goes_to_stderr_not_into_the_json_lines(cli):
    cli.add("q", 1)
    result = cli("queue", "process", "q", "tests_handlers:noisy")
    assert result.returncode == 0
    assert [json.loads(line)["status"] for line in result.stdout.splitlines()] == ["acked"]
    assert "handler chatter on stdout" in result.stderr


def test_async_handlers_are_awaited(cli):
    cli.add("q", 1)
    [line] = cli.json("queue", "process", "q", "tests_handlers:async_ok")
    assert line["status"] == "acked"


@pytest.mark.parametrize(
    "handler",
    ["tests_handlers", "no_such_module:f", "tests_handlers:missing", "tests_handlers:not_callable"],
)
def test_bad_handler_is_a_usage_error_before_anything_is_leased(cli, handler):
    cli.add("q", 1)
    result = cli("queue", "process", "q", handler)
    assert result.returncode == 2
    assert result.stderr.startswith("localqueue: error:")
    assert cli.stats("q") == {
        "queue": "q", "ready": 1, "delayed": 0, "inflight": 0, "dead": 0, "total": 1,
        "paused": False,
        "max_inflight": None,
        "rate": None,
        "per_group": None,
        "held": 0,
    }  # fmt: skip


@pytest.mark.parametrize(
    "option", [("--max-tries", "0"), ("--backoff", "linear"), ("--release-delay", "-1")]
)
def test_bad_worker_options_are_usage_errors(cli, option):
    cli.add("q", 1)
    assert cli("queue", "process", "q", "tests_handlers:ok", *option).returncode == 2
    assert cli.stats("q")["ready"] == 1


def test_attempt_budget_lives_in_the_retry_store(cli):
    cli.add("q", 1)
    cli.json("queue", "process", "q", "tests_handlers:fail", "--max-tries", "5", "--max-jobs", "1")
    with sqlite3.connect(cli.retries) as db:
        tables = [r[0] for r in db.execute("select name from sqlite_master where type='table'")]
    assert tables  # the retry store file was created where --retry-store-path said


def test_a_handlers_exit_hooks_and_threads_finish_before_the_worker_exits(cli, tmp_path):
    """A user's handler may flush at exit (atexit) or leave a thread writing: the worker
    ends like any Python program, not with a bare _exit as the store-only commands do."""
    done = tmp_path / "done"
    (cli.cwd / "exit_hooks.py").write_text(
        "import atexit, threading, time\n"
        f"DONE = {str(done)!r}\n"
        "def handle(value):\n"
        "    atexit.register(lambda: open(DONE + '.atexit', 'w').close())\n"
        "    def late():\n"
        "        time.sleep(0.2)\n"
        "        open(DONE + '.thread', 'w').close()\n"
        "    threading.Thread(target=late).start()\n"
    )
    cli.add("q", 1)
    [line] = cli.json("queue", "process", "q", "exit_hooks:handle")
    assert line["status"] == "acked"
    assert (tmp_path / "done.atexit").exists()
    assert (tmp_path / "done.thread").exists()
