"""The heartbeat: it wakes for every lease (also after an idle spell), never waits on a
busy store past the lease it extends, and never leaves a second thread behind."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest

from localqueue import PersistentQueue, StoreLockedError
from localqueue.worker.heartbeat import Heartbeat


def _heartbeat_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "localqueue-heartbeat"]


def test_a_lease_held_after_an_idle_spell_is_extended(tmp_path: Path) -> None:
    queue = PersistentQueue("jobs", tmp_path / "q.sqlite3", lease_timeout=0.6)
    heartbeat = Heartbeat(queue, 0.6)
    try:
        queue.put("quick")
        first = queue.get_message(False)
        heartbeat.hold(first)
        heartbeat.drop(first)
        queue.ack(first)
        time.sleep(0.5)  # idle: the thread sleeps on an empty table
        queue.put("slow")
        slow = queue.get_message(False)
        leased_until = slow.lease_expires_at
        heartbeat.hold(slow)
        deadline = time.monotonic() + 10
        while slow.lease_expires_at == leased_until:  # extended in place by a beat
            assert time.monotonic() < deadline, (
                "the lease taken after the idle spell was never extended"
            )
            time.sleep(0.02)
        assert not heartbeat.is_lost(slow)
    finally:
        heartbeat.close()
        queue.close()


def test_closing_the_heartbeat_leaves_no_thread_behind(tmp_path: Path) -> None:
    queue = PersistentQueue("jobs", tmp_path / "q.sqlite3")
    heartbeat = Heartbeat(queue, 30.0)
    before = len(_heartbeat_threads())
    try:
        for value in range(3):  # hold, close, hold again: one thread at a time
            queue.put(value)
            message = queue.get_message(False)
            heartbeat.hold(message)
            assert len(_heartbeat_threads()) == before + 1
            heartbeat.close()
            assert len(_heartbeat_threads()) == before
    finally:
        heartbeat.close()
        queue.close()


def test_an_extension_waits_for_a_busy_store_no_longer_than_it_is_told(tmp_path: Path) -> None:
    path = tmp_path / "q.sqlite3"
    queue = PersistentQueue("jobs", path)  # busy timeout: 5 s
    queue.put("job")
    message = queue.get_message(False)
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")  # another process's write lock, for 2 s
    timer = threading.Timer(2.0, holder.execute, ("ROLLBACK",))
    timer.start()
    try:
        # Unbounded, the extension would wait out the lock and succeed; told to wait at
        # most 0.3 s (what its lease has left), it gives up first.
        with pytest.raises(StoreLockedError):
            queue.extend_leases([message], 30.0, wait=0.3)
    finally:
        timer.join()
        holder.close()
    assert queue.extend_leases([message], 30.0, wait=0.3) == [True]  # free again
    queue.close()
