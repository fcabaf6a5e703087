"""PostgreSQL-only behaviour of PostgresQueueStore / PostgresAttemptStore: LISTEN/NOTIFY
wake-ups, surviving killed connections, schema versioning, errors, fork safety.

Runs against the server in ``LOCALQUEUE_TEST_POSTGRES_URL`` (skipped with a reason when
it is unset); every test works in its own schema and drops it afterwards."""

from __future__ import annotations

import gc
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from localqueue import Empty, Full, PersistentQueue, StoreError, StoreLockedError
from localqueue.outcome import Settlement
from tests.conftest import fresh_schema, postgres_url, unavailable

psycopg = pytest.importorskip("psycopg", reason="psycopg (localqueue[postgres]) is not installed")

from localqueue.retry.postgres import PostgresAttemptStore  # noqa: E402
from localqueue.stores import open_store  # noqa: E402
from localqueue.stores._pg_sql import SCHEMA_VERSION  # noqa: E402
from localqueue.stores.postgres import PostgresQueueStore  # noqa: E402
from tests.stores.test_migration import create_release_0_3_schema  # noqa: E402


def with_params(url: str, **params: str) -> str:
    """``url`` with extra query parameters (the server URL may already have some)."""
    extra = "&".join(f"{key}={value}" for key, value in params.items())
    return f"{url}{'&' if '?' in url else '?'}{extra}"


@pytest.fixture
def url() -> str:
    return postgres_url()


@pytest.fixture
def admin(url: str) -> Iterator[Any]:
    """A plain psycopg connection for looking at and tampering with the server."""
    try:
        conn = psycopg.connect(url, autocommit=True)
    except psycopg.Error as exc:
        unavailable(f"cannot connect to LOCALQUEUE_TEST_POSTGRES_URL: {exc}")
    with conn:
        yield conn


@pytest.fixture
def schema(admin: Any) -> Iterator[str]:
    name = fresh_schema()
    yield name
    admin.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


@pytest.fixture
def make_store(url: str, schema: str) -> Iterator[Callable[..., PostgresQueueStore]]:
    """Stores on the test schema; ``app`` tags their connections (application_name)."""
    made: list[PostgresQueueStore] = []

    def make(app: str | None = None, **options: Any) -> PostgresQueueStore:
        dsn = url if app is None else with_params(url, application_name=app)
        store = PostgresQueueStore(dsn, schema=schema, **options)
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()


def kill_backends(admin: Any, app: str) -> int:
    """pg_terminate_backend every connection tagged ``app``, waiting until each is gone."""
    row = admin.execute(
        "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 10000)) "
        "FROM pg_stat_activity WHERE application_name = %s",
        (app,),
    ).fetchone()
    return int(row[0])


def backends(admin: Any, app: str) -> set[int]:
    rows = admin.execute(
        "SELECT pid FROM pg_stat_activity WHERE application_name = %s", (app,)
    ).fetchall()
    return {pid for (pid,) in rows}


def new_app() -> str:
    return f"lq_test_{uuid.uuid4().hex[:10]}"


# -- LISTEN/NOTIFY ---------------------------------------------------------------------


def test_wait_wakes_on_a_put_from_another_connection(make_store: Callable[..., Any]) -> None:
    waiter, producer = make_store(), make_store()
    waiter.listen()  # from here on a put cannot be missed
    woke: list[str] = []
    thread = threading.Thread(target=lambda: (waiter.wait("jobs", 120), woke.append("woke")))
    thread.start()
    PersistentQueue("jobs", store=producer).put("hello")
    thread.join(60)  # only a notification ends a 120 s wait this early
    assert not thread.is_alive() and woke == ["woke"]
    assert PersistentQueue("jobs", store=waiter).get_message(block=False).value == "hello"


def test_blocked_get_returns_the_message_put_by_another_store(
    make_store: Callable[..., Any],
) -> None:
    consumer, producer = make_store(), make_store()
    consumer.listen()
    got: list[Any] = []
    queue = PersistentQueue("jobs", store=consumer)
    thread = threading.Thread(target=lambda: got.append(queue.get_message(timeout=120).value))
    thread.start()
    PersistentQueue("jobs", store=producer).put({"n": 1})
    thread.join(60)
    assert got == [{"n": 1}]


def test_released_message_wakes_a_waiter(make_store: Callable[..., Any]) -> None:
    waiter, worker = make_store(), make_store()
    queue = PersistentQueue("jobs", store=worker)
    queue.put("job")
    leased = queue.get_message(block=False)
    waiter.listen()
    thread = threading.Thread(target=lambda: waiter.wait("jobs", 120))
    thread.start()
    queue.release(leased)
    thread.join(60)
    assert not thread.is_alive()


def test_settle_many_wakes_a_waiter_on_the_queue_its_then_put_fills(
    make_store: Callable[..., Any],
) -> None:
    waiter, worker = make_store(), make_store()
    worker.put("jobs", [b'"job"'])
    (held,) = worker.lease_many("jobs", 1, lease_timeout=60, leased_by="w")
    waiter.listen()
    thread = threading.Thread(target=lambda: waiter.wait("results", 120))
    thread.start()
    settlement = Settlement(held.id, held.lease_token, "acked", then_put=(b'"done"',), to="results")
    assert worker.settle_many("jobs", [settlement]) == ([True], [])
    thread.join(60)  # only a notification ends a 120 s wait this early
    assert not thread.is_alive()
    assert [row.value for row in waiter.peek("results")] == [b'"done"']


def test_writers_notify_only_while_a_listener_is_present(
    make_store: Callable[..., Any], url: str
) -> None:
    from localqueue.stores._pg_sql import LISTEN_SLOTS

    producer = make_store()
    producer.put("setup", [b"0"])  # the schema exists
    with psycopg.connect(url, autocommit=True) as raw:
        raw.execute(f'LISTEN "{producer.channel}"')  # listening, but not announced
        producer.put("quiet", [b"1"])  # nobody announced: no NOTIFY
        raw.execute(
            "SELECT pg_advisory_lock_shared(hashtext(%s), slot)"
            " FROM generate_series(0, %s) AS slot",
            (producer.channel, LISTEN_SLOTS - 1),
        )
        producer.put("loud", [b"2"])
        worker = make_store()
        (held,) = worker.lease_many("loud", 1, lease_timeout=60, leased_by="w")
        worker.settle_many("loud", [Settlement(held.id, held.lease_token, "released")])
        heard = []
        for note in raw.notifies(timeout=60):  # in commit order
            heard.append(note.payload)
            if len(heard) == 2:
                break
    assert heard == ["loud", "loud"]


def test_wait_survives_its_listening_connection_being_killed(
    make_store: Callable[..., Any], admin: Any
) -> None:
    app = new_app()
    consumer, producer = make_store(app), make_store()
    consumer.listen()
    assert kill_backends(admin, app) == 1  # the listening connection
    got: list[Any] = []
    queue = PersistentQueue("jobs", store=consumer)
    thread = threading.Thread(target=lambda: got.append(queue.get_message(timeout=120).value))
    thread.start()
    PersistentQueue("jobs", store=producer).put("after the kill")
    thread.join(60)
    assert got == ["after the kill"]


# -- connection loss -------------------------------------------------------------------


def test_killed_idle_connection_is_replaced_transparently(
    make_store: Callable[..., Any], admin: Any
) -> None:
    app = new_app()
    queue = PersistentQueue("jobs", store=make_store(app))
    queue.put(1)
    before = backends(admin, app)
    assert kill_backends(admin, app) == 1
    assert queue.stats().ready == 1  # a read on the new connection
    message = queue.get_message(block=False)
    assert kill_backends(admin, app) == 1  # killed while the message is held
    queue.ack(message)  # the fenced ack is sent on a fresh connection
    assert queue.stats().total == 0
    assert backends(admin, app).isdisjoint(before)


def test_connection_killed_without_waiting_is_survived(
    make_store: Callable[..., Any], admin: Any
) -> None:
    app = new_app()
    queue = PersistentQueue("jobs", store=make_store(app))
    for i in range(20):
        queue.put(i)
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
            (app,),
        )
        message = queue.get_message(block=False)
        queue.ack(message)
    assert queue.stats().total == 0


# -- schema ----------------------------------------------------------------------------


def test_schema_is_created_once_and_versioned(
    make_store: Callable[..., Any], admin: Any, schema: str
) -> None:
    stores = [make_store() for _ in range(4)]
    threads = [threading.Thread(target=store.stats, args=("jobs",)) for store in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    meta = dict(admin.execute(f'SELECT key, value FROM "{schema}".meta').fetchall())
    assert meta["queue_version"] == str(SCHEMA_VERSION)
    assert len(meta["queue_tag"]) == 8


def test_newer_schema_version_is_refused(
    make_store: Callable[..., Any], admin: Any, schema: str
) -> None:
    PersistentQueue("jobs", store=make_store()).put(1)
    admin.execute(f"UPDATE \"{schema}\".meta SET value = '99' WHERE key = 'queue_version'")
    with pytest.raises(StoreError, match="version 99, newer"):
        make_store().stats("jobs")
    admin.execute(f"UPDATE \"{schema}\".meta SET value = 'x' WHERE key = 'queue_version'")
    with pytest.raises(StoreError, match="not a localqueue schema"):
        make_store().stats("jobs")


def test_a_version_1_schema_is_migrated_and_remembers_its_queues(
    make_store: Callable[..., Any], admin: Any, schema: str
) -> None:
    create_release_0_3_schema(admin, schema)  # version 2
    # what a version 1 schema was: no table of queue names, no trigger filling it
    admin.execute(f'DROP TABLE "{schema}".queues')
    admin.execute(f'DROP FUNCTION "{schema}".remember_queues CASCADE')
    admin.execute(f"UPDATE \"{schema}\".meta SET value = '1' WHERE key = 'queue_version'")
    store = make_store()
    assert store.known_queues() == ["jobs", "other"]
    PersistentQueue("other", store=store).purge()
    PersistentQueue("new", store=store).put(3)
    assert store.known_queues() == ["jobs", "new", "other"]
    version = admin.execute(f"SELECT value FROM \"{schema}\".meta WHERE key = 'queue_version'")
    assert version.fetchone() == (str(SCHEMA_VERSION),)


def test_ids_stay_unique_across_a_recreated_schema(make_store: Callable[..., Any]) -> None:
    store = make_store()
    queue = PersistentQueue("jobs", store=store)
    first = queue.put(1)
    store.drop_schema()
    second = queue.put(1)
    assert first.id != second.id
    assert queue.inspect(first.id) is None


def test_queue_and_attempt_store_share_a_schema(url: str, schema: str) -> None:
    queue_store = PostgresQueueStore(url, schema=schema)
    attempts = PostgresAttemptStore(url, schema=schema)
    try:
        PersistentQueue("jobs", store=queue_store).put(1)
        assert attempts.record_attempt("k", 5.0).attempts == 1
        assert queue_store.stats("jobs").ready == 1
        assert attempts.get("k") is not None
    finally:
        queue_store.close()
        attempts.close()


def test_schema_from_the_url_and_open_store(url: str, schema: str) -> None:
    store = open_store(with_params(url, schema=schema))
    try:
        assert isinstance(store, PostgresQueueStore)
        assert store.schema == schema
        PersistentQueue("jobs", store=store).put(1)
        assert store.queues()["jobs"].ready == 1
    finally:
        store.close()


# -- errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "dsn",
    [
        "postgresql://someone:s3cretpw@127.0.0.1:1/test",
        "host=127.0.0.1 port=1 dbname=test password=s3cretpw",
        "postgresql://someone:s3cretpw@127.0.0.1:notaport/test",
        "not a dsn password=s3cretpw",
    ],
)
def test_unusable_server_is_store_error_without_the_password(dsn: str) -> None:
    store = PostgresQueueStore(dsn, schema="lq_never_created")
    with pytest.raises(StoreError) as caught:
        store.stats("jobs")
    assert "s3cretpw" not in str(caught.value)
    assert "s3cretpw" not in repr(store)
    assert "\n" not in str(caught.value)
    store.close()


def test_bad_schema_name_is_a_value_error(url: str) -> None:
    with pytest.raises(ValueError, match="invalid schema name"):
        PostgresQueueStore(url, schema='x"; DROP TABLE y; --')


def test_lock_held_too_long_is_store_locked_error(
    make_store: Callable[..., Any], url: str, schema: str
) -> None:
    store = make_store(busy_timeout=0.2)
    queue = PersistentQueue("jobs", store=store)
    queue.put(1)
    with psycopg.connect(url) as locker:  # a transaction holding the table
        locker.execute(f'LOCK TABLE "{schema}".messages IN ACCESS EXCLUSIVE MODE')
        with pytest.raises(StoreLockedError, match="lock"):
            queue.put(2)
        locker.rollback()
    queue.put(2)
    assert queue.stats().ready == 2


def test_clock_is_the_servers(make_store: Callable[..., Any], admin: Any) -> None:
    store = make_store()
    (server,) = admin.execute("SELECT extract(epoch FROM clock_timestamp())::float8").fetchone()
    mine = store.clock()
    (after,) = admin.execute("SELECT extract(epoch FROM clock_timestamp())::float8").fetchone()
    assert server <= mine <= after
    message = PersistentQueue("jobs", store=store).put(1)
    assert server <= message.enqueued_at <= store.clock()


def test_a_client_with_a_skewed_clock_agrees_with_the_others(
    make_store: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    honest = PersistentQueue("jobs", store=make_store(), lease_timeout=30)
    skewed = PersistentQueue("jobs", store=make_store(), lease_timeout=30)
    honest.put("later", delay=30)
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + 3600)  # an hour ahead
    with pytest.raises(Empty):
        skewed.get_message(block=False)  # not due yet, whatever this host believes
    skewed.put("now")
    leased = skewed.get_message(block=False)
    assert leased.value == "now"
    assert abs(leased.leased_at - real_time()) < 60  # the server's time, not this host's
    with pytest.raises(Empty):
        honest.get_message(block=False)  # the lease is live for everyone


# -- fork ------------------------------------------------------------------------------


def test_forked_child_opens_its_own_connection(make_store: Callable[..., Any], admin: Any) -> None:
    app = new_app()
    store = make_store(app)
    queue = PersistentQueue("jobs", store=store)
    queue.put("from parent")
    (parent_backend,) = backends(admin, app)
    to_parent, to_child = os.pipe(), os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: use the inherited store, report, wait, drop everything
        code = 1
        try:
            queue.put("from child")
            os.write(to_parent[1], b"put\n")
            os.read(to_child[0], 1)
            store.close()
            gc.collect()
            code = 0
        finally:
            os._exit(code)
    try:
        assert os.read(to_parent[0], 4) == b"put\n"
        during = backends(admin, app)  # the child is alive and connected now
    finally:
        os.write(to_child[1], b"x")
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert len(during) == 2 and parent_backend in during  # two sessions, not one shared
    assert [queue.get_message(block=False).value for _ in range(2)] == [
        "from parent",
        "from child",
    ]
    assert parent_backend in backends(admin, app)  # the parent's session survived


def test_maxsize_holds_across_concurrent_producers(make_store: Callable[..., Any]) -> None:
    queues = [PersistentQueue("bounded", store=make_store(), maxsize=10) for _ in range(4)]
    accepted: list[int] = []
    barrier = threading.Barrier(len(queues))

    def produce(queue: PersistentQueue) -> None:
        barrier.wait()
        for i in range(10):
            try:
                queue.put_nowait(i)
            except Full:
                continue
            accepted.append(i)

    threads = [threading.Thread(target=produce, args=(queue,)) for queue in queues]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(accepted) == 10 == queues[0].qsize()


def test_threads_share_one_store(make_store: Callable[..., Any]) -> None:
    queue = PersistentQueue("jobs", store=make_store())
    queue.put_many(list(range(200)))
    taken: list[int] = []
    lock = threading.Lock()

    def drain() -> None:
        while True:
            try:
                message = queue.get_message(block=False)
            except Empty:
                return
            queue.ack(message)
            with lock:
                taken.append(message.value)

    threads = [threading.Thread(target=drain) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(taken) == list(range(200))
    assert queue.stats().total == 0
