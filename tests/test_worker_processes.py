"""Workers across real processes: poison messages that kill their process, and a lease kept
alive by the heartbeat while a second consumer polls."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from localqueue import PersistentQueue, persistent_async_worker, persistent_worker
from localqueue.retry import MemoryAttemptStore

POISON_WORKER = textwrap.dedent(
    """
    import json, os, signal, sys
    from localqueue import PersistentQueue, persistent_worker
    from localqueue.retry import PersistentRetryExhausted, SQLiteAttemptStore

    queue_path, retry_path, log_path, how = sys.argv[1:5]
    queue = PersistentQueue("poison", queue_path, lease_timeout=0.5)

    @persistent_worker(
        queue, max_tries=3, retry_store=SQLiteAttemptStore(retry_path), timeout=20
    )
    def handler(value):
        with open(log_path, "a") as log:
            log.write(f"{os.getpid()} {value}\\n")
        if how == "sigkill":
            os.kill(os.getpid(), signal.SIGKILL)
        os._exit(17)

    try:
        handler()
    except PersistentRetryExhausted as exc:
        print(json.dumps({"status": "dead", "attempts": exc.attempts}), flush=True)
    """
)


@pytest.mark.slow
@pytest.mark.parametrize("how", ["exit", "sigkill"])
def test_poison_message_reaches_dead_letter_after_max_tries(tmp_path: Path, how: str) -> None:
    script = tmp_path / "poison_worker.py"
    script.write_text(POISON_WORKER)
    queue_path, retry_path, log = (
        tmp_path / "q.sqlite3",
        tmp_path / "r.sqlite3",
        tmp_path / "exec.log",
    )
    queue = PersistentQueue("poison", queue_path)
    message = queue.put({"kills": "its worker"})
    codes = []
    for _ in range(6):  # more runs than needed: the message must be dead after the 4th
        run = subprocess.run(
            [sys.executable, str(script), str(queue_path), str(retry_path), str(log), how],
            capture_output=True,
            text=True,
            timeout=60,
        )
        codes.append(run.returncode)
        if run.returncode == 0:
            assert json.loads(run.stdout) == {"status": "dead", "attempts": 3}
            break
    killed = -9 if how == "sigkill" else 17
    assert codes == [killed, killed, killed, 0]
    assert len(log.read_text().splitlines()) == 3  # exactly max_tries executions
    [dead] = queue.dead_letters()
    assert dead.id == message.id and dead.attempts == 4  # the 4th delivery never ran it
    assert dead.last_error is not None
    # The decorators and the CLI workers share one engine, and one record for this case.
    assert dead.last_error["type"] == "RetryBudgetExhausted"
    assert dead.last_error["message"] == "3 attempts started and none finished"
    queue.close()


CONSUMER = textwrap.dedent(
    """
    import json, sys, threading, time
    from localqueue import Empty, PersistentQueue

    queue = PersistentQueue("jobs", sys.argv[1], lease_timeout=30)
    stop = threading.Event()
    print("ready", flush=True)
    assert sys.stdin.readline() == "go\\n"
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    polls, got = 0, []
    while not stop.is_set():
        polls += 1
        try:
            got.append(queue.get_message(block=False).id)
        except Empty:
            time.sleep(0.02)
    print(json.dumps({"polls": polls, "got": got}), flush=True)
    """
)


@pytest.mark.slow
@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_heartbeat_keeps_a_long_job_from_a_second_consumer(tmp_path: Path, flavour: str) -> None:
    script = tmp_path / "consumer.py"
    script.write_text(CONSUMER)
    path = tmp_path / "q.sqlite3"
    queue = PersistentQueue("jobs", path, lease_timeout=1.0)
    message = queue.put("long job")
    consumer = subprocess.Popen(
        [sys.executable, str(script), str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert consumer.stdin is not None and consumer.stdout is not None
    try:
        assert consumer.stdout.readline() == "ready\n"

        def start_polling() -> None:  # called once the worker holds the lease
            consumer.stdin.write("go\n")  # type: ignore[union-attr]
            consumer.stdin.flush()  # type: ignore[union-attr]

        options: dict[str, Any] = {"retry_store": MemoryAttemptStore(), "block": False}
        started = time.monotonic()
        if flavour == "sync":

            @persistent_worker(queue, **options)
            def handler(value: str) -> str:
                start_polling()
                time.sleep(3.0)
                return value

            assert handler() == "long job"
        else:

            @persistent_async_worker(queue, **options)
            async def async_handler(value: str) -> str:
                start_polling()
                await asyncio.sleep(3.0)
                return value

            assert asyncio.run(async_handler()) == "long job"
        assert time.monotonic() - started >= 3.0
        consumer.stdin.close()
        report = json.loads(consumer.stdout.readline())
    finally:
        consumer.kill()
        consumer.wait()
    assert report["got"] == []  # never handed to the second consumer
    assert report["polls"] > 20  # ...which polled the whole time
    assert queue.inspect(message.id) is None  # and the worker acked it
    queue.close()
