"""``queue pop``, ``ack``, ``release``, ``inspect``: leasing and settling from the shell."""

from __future__ import annotations

import time

from tests.cli.conftest import SUBPROCESS

pytestmark = SUBPROCESS


def test_pop_leases_the_oldest_and_records_the_worker(cli):
    first, _ = cli.add("q", {"n": 1}, {"n": 2})
    [message] = cli.json("queue", "pop", "q", "--worker-id", "worker-1")
    assert message["id"] == first
    assert message["state"] == "inflight"
    assert message["leased_by"] == "worker-1"
    assert message["attempts"] == 1
    assert message["lease_token"]
    [seen] = cli.json("queue", "inspect", "q", first)
    assert seen["leased_by"] == "worker-1"
    assert seen["state"] == "inflight"


def test_pop_on_an_empty_queue_exits_3_quietly(cli):
    cli.empty_queue("q")
    result = cli("queue", "pop", "q")
    assert result.returncode == 3
    assert result.stdout == ""


def test_pop_block_timeout_exits_3(cli):
    cli.empty_queue("q")
    started = time.monotonic()
    result = cli("queue", "pop", "q", "--block", "--timeout", "0.2")
    assert result.returncode == 3
    assert time.monotonic() - started >= 0.2


def test_pop_timeout_without_block_is_a_usage_error_naming_block(cli):
    """--timeout alone used to be ignored: pop returned at once (exit 3) on a queue the
    caller meant to wait on."""
    cli.add("q", 1)
    result = cli("queue", "pop", "q", "--timeout", "5")
    assert result.returncode == 2
    assert "--timeout needs --block" in result.stderr
    assert cli.stats("q")["ready"] == 1  # nothing leased


def test_pop_block_returns_a_message_that_is_already_there(cli):
    [added] = cli.add("q", "x")
    [message] = cli.json("queue", "pop", "q", "--block", "--timeout", "5")
    assert message["id"] == added


def test_lease_timeout_sets_the_lease_expiry(cli):
    cli.add("q", 1)
    [message] = cli.json("queue", "pop", "q", "--lease-timeout", "120")
    assert 119 <= message["lease_expires_at"] - message["leased_at"] <= 121


def test_ack_deletes_the_message(cli):
    [added] = cli.add("q", 1)
    [message] = cli.json("queue", "pop", "q")
    assert cli.json("queue", "ack", "q", added, "--lease-token", message["lease_token"]) == [
        {"id": added, "queue": "q", "status": "acked"}
    ]
    assert cli.stats("q")["total"] == 0
    assert cli("queue", "inspect", "q", added).returncode == 4


def test_ack_with_a_stale_token_exits_4_and_changes_nothing(cli):
    [added] = cli.add("q", 1)
    cli.json("queue", "pop", "q")
    result = cli("queue", "ack", "q", added, "--lease-token", "stale")
    assert result.returncode == 4
    assert "localqueue: error:" in result.stderr
    assert cli.stats("q")["inflight"] == 1


def test_ack_of_an_unknown_id_or_a_ready_message_exits_4(cli):
    [added] = cli.add("q", 1)
    assert cli("queue", "ack", "q", "no-such-id").returncode == 4
    assert cli("queue", "ack", "q", added).returncode == 4  # not inflight
    assert cli.stats("q")["ready"] == 1


def test_release_makes_it_deliverable_again_after_the_delay(cli):
    [added] = cli.add("q", 1)
    cli.json("queue", "pop", "q")
    [released] = cli.json("queue", "release", "q", added, "--delay", "60")
    assert released["state"] == "delayed"
    assert released["lease_token"] is None
    assert cli("queue", "pop", "q").returncode == 3


def test_release_now_then_pop_again_counts_attempts(cli):
    [added] = cli.add("q", 1)
    [first] = cli.json("queue", "pop", "q")
    cli.json("queue", "release", "q", added, "--lease-token", first["lease_token"])
    [second] = cli.json("queue", "pop", "q")
    assert second["attempts"] == 2
    assert second["lease_token"] != first["lease_token"]
    stale = cli("queue", "release", "q", added, "--lease-token", first["lease_token"])
    assert stale.returncode == 4


def test_release_of_a_ready_message_exits_4(cli):
    [added] = cli.add("q", 1)
    assert cli("queue", "release", "q", added).returncode == 4


def test_inspect_unknown_id_exits_4_with_a_message(cli):
    cli.empty_queue("q")
    result = cli("queue", "inspect", "q", "nope")
    assert result.returncode == 4
    assert "nope" in result.stderr


def test_inspect_prints_the_full_message_shape(cli):
    [added] = cli.add("q", {"to": "a@b.c"})
    [message] = cli.json("queue", "inspect", "q", added)
    assert list(message) == [
        "id",
        "queue",
        "value",
        "state",
        "attempts",
        "enqueued_at",
        "available_at",
        "leased_at",
        "lease_expires_at",
        "leased_by",
        "lease_token",
        "last_error",
        "failed_at",
        "dead_at",
        "key",
        "priority",
        "group",
    ]
