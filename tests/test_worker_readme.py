"""The seed README's "Queue worker" and "Persistent retry layer" snippets, run as written.

Each test body below is the snippet verbatim (run in a temporary directory, since the
snippets use ``./`` paths); ``send_email`` and ``deliver`` are the stubs the snippets
leave to the reader, defined here in the module namespace.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from localqueue.retry import PersistentRetryExhausted, SQLiteAttemptStore

sent: list[str] = []
delivered: list[str] = []
deliver_failures = 0  # how many of the next deliver() calls raise ConnectionError


def send_email(address: str) -> None:
    sent.append(address)


def deliver(address: str) -> None:
    global deliver_failures
    if deliver_failures:
        deliver_failures -= 1
        raise ConnectionError(f"cannot reach the mail server for {address}")
    delivered.append(address)


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    global deliver_failures
    monkeypatch.chdir(tmp_path)
    sent.clear()
    delivered.clear()
    deliver_failures = 0


def test_queue_worker_snippet(tmp_path: Path) -> None:
    # --- README "Queue worker", as written ---------------------------------------------
    from localqueue import PersistentQueue, PersistentWorkerConfig, persistent_worker  # noqa: I001
    from tenacity import retry_if_exception_type, stop_after_attempt, wait_exponential  # noqa: F401

    queue = PersistentQueue("emails", store_path="./localqueue_queue.sqlite3")
    queue.put({"to": "user@example.com"})

    worker_config = PersistentWorkerConfig(
        max_tries=5,
        wait=wait_exponential(multiplier=1, min=1, max=30),
        retry=retry_if_exception_type(ConnectionError),
    )

    @persistent_worker(queue, config=worker_config)
    def send_email_job(job: dict[str, str]) -> None:
        send_email(job["to"])

    send_email_job()
    # --- end of snippet ----------------------------------------------------------------

    assert sent == ["user@example.com"]
    assert queue.stats().total == 0  # acked
    assert (tmp_path / "localqueue_queue.sqlite3").exists()
    assert (tmp_path / "localqueue_retries.sqlite3").exists()  # the default retry store
    queue.close()


def test_persistent_retry_snippet(tmp_path: Path) -> None:
    global deliver_failures
    # --- README "Persistent retry layer", as written -----------------------------------
    from localqueue.retry import key_from_argument, persistent_retry  # noqa: I001
    from tenacity import retry_if_exception_type, stop_after_attempt, wait_fixed

    @persistent_retry(
        key_fn=key_from_argument("email_id"),
        stop=stop_after_attempt(3),
        wait=wait_fixed(1),
        retry=retry_if_exception_type(ConnectionError),
    )
    def send_email(email_id: str, address: str) -> None:
        deliver(address)

    # --- end of snippet ----------------------------------------------------------------

    send_email("41", "first@example.com")
    assert delivered == ["first@example.com"]

    deliver_failures = 100  # the server stays down: three attempts, one second apart
    with pytest.raises(PersistentRetryExhausted) as caught:
        send_email("42", "user@example.com")
    assert isinstance(caught.value.__cause__, ConnectionError)
    assert deliver_failures == 97

    # Later calls with the same key raise before the wrapped function is called again,
    # in this process or any other using ./localqueue_retries.sqlite3.
    with pytest.raises(PersistentRetryExhausted):
        send_email("42", "user@example.com")
    assert deliver_failures == 97
    store = SQLiteAttemptStore(tmp_path / "localqueue_retries.sqlite3")
    record = store.get("42")
    assert record is not None and record.exhausted and record.attempts == 3
    store.close()


def test_worker_engine_snippet(tmp_path: Path) -> None:
    PersistentQueue = __import__("localqueue").PersistentQueue
    PersistentQueue("emails", store_path="./localqueue_queue.sqlite3").put_many(
        [{"to": f"user{i}@example.com"} for i in range(20)]
    )
    # --- docs/python.md "One engine runs every worker", as written ---------------------
    from localqueue import PersistentQueue, Worker

    def send(job: dict[str, str]) -> None:
        send_email(job["to"])

    queue = PersistentQueue("emails", store_path="./localqueue_queue.sqlite3")
    summary = Worker(queue, send, concurrency=8, max_tries=5).run()  # drain what is ready
    print(summary.acked, summary.released, summary.dead)  # run(block=True) waits
    # --- end of snippet ----------------------------------------------------------------

    assert (summary.acked, summary.released, summary.dead) == (20, 0, 0)
    assert sorted(sent) == sorted(f"user{i}@example.com" for i in range(20))
    assert queue.stats().total == 0
    queue.close()
