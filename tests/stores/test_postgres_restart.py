"""A PostgreSQL server that goes away and comes back, seen from the client.

The store talks to the real server through a small TCP proxy the test controls: "down"
drops every open connection and turns new ones away (as a restarting server does),
"up" lets them through again. A call made while the server is down waits, reconnecting
with backoff, and succeeds once it is back."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from localqueue import PersistentQueue, StoreError
from tests.conftest import fresh_schema, postgres_url, unavailable

psycopg = pytest.importorskip("psycopg", reason="psycopg (localqueue[postgres]) is not installed")

from localqueue.stores.postgres import PostgresQueueStore  # noqa: E402


class FlakyProxy:
    """TCP proxy to ``target`` that can play a server restart."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.cond = threading.Condition()
        self.is_up = True
        self.turned_away = 0
        self.open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return  # closed
            with self.cond:
                if not self.is_up:
                    client.close()
                    self.turned_away += 1
                    self.cond.notify_all()
                    continue
                upstream = socket.create_connection(self.target)
                self.open += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
            end.close()

    def down(self) -> None:
        with self.cond:
            self.is_up = False
            for sock in self.open:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            self.open.clear()

    def up(self) -> None:
        with self.cond:
            self.is_up = True

    def wait_turned_away(self, count: int) -> None:
        with self.cond:
            assert self.cond.wait_for(lambda: self.turned_away >= count, 60)

    def close(self) -> None:
        self.server.close()
        self.down()


@pytest.fixture
def url() -> str:
    return postgres_url()


@pytest.fixture
def proxied(url: str) -> Iterator[tuple[FlakyProxy, str, str]]:
    """(proxy, DSN through the proxy, schema); the schema is dropped afterwards."""
    try:
        admin = psycopg.connect(url, autocommit=True)
    except psycopg.Error as exc:
        unavailable(f"cannot connect to LOCALQUEUE_TEST_POSTGRES_URL: {exc}")
    info = admin.info
    if not info.host.startswith("/") and info.host not in ("localhost", "127.0.0.1", "::1"):
        pytest.skip("the restart proxy only fronts a server on this machine")
    proxy = FlakyProxy(("127.0.0.1" if info.host == "localhost" else info.host, info.port))
    dsn = psycopg.conninfo.make_conninfo(url, host="127.0.0.1", port=str(proxy.port))
    schema = fresh_schema()
    try:
        yield proxy, dsn, schema
    finally:
        proxy.close()
        admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        admin.close()


def test_a_call_during_a_restart_waits_for_the_server(
    proxied: tuple[FlakyProxy, str, str],
) -> None:
    proxy, dsn, schema = proxied
    with PostgresQueueStore(dsn, schema=schema, reconnect_timeout=60) as store:
        queue = PersistentQueue("jobs", store=store)
        first = queue.put("before")
        proxy.down()
        outcome: list[Any] = []

        def put_while_down() -> None:
            try:
                outcome.append(queue.put("during"))
            except Exception as exc:
                outcome.append(exc)

        thread = threading.Thread(target=put_while_down)
        thread.start()
        proxy.wait_turned_away(2)  # it kept trying, backing off
        proxy.up()
        thread.join(60)
        assert [type(item).__name__ for item in outcome] == ["QueueMessage"]
        leased = queue.get_message(block=False)
        assert leased.id == first.id
        queue.ack(leased)
        assert queue.get_message(block=False).value == "during"


def test_a_server_that_stays_down_is_a_store_error_in_the_end(
    proxied: tuple[FlakyProxy, str, str],
) -> None:
    proxy, dsn, schema = proxied
    with PostgresQueueStore(dsn, schema=schema, reconnect_timeout=0.5) as store:
        queue = PersistentQueue("jobs", store=store)
        queue.put(1)
        proxy.down()
        with pytest.raises(StoreError, match="cannot connect"):
            queue.stats()
        proxy.up()
        assert queue.stats().ready == 1  # and it recovers when the server is back
