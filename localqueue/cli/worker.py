"""The worker loop of ``queue process`` and ``queue exec``: one attempt per delivery.

For each leased message: count the attempt in the attempt store *before* the handler runs
(a handler that kills its process still spends its budget), keep the lease alive from a
heartbeat thread while it runs, then ack, release with the retry wait's delay, or -- once
``max_tries`` attempts are spent -- dead-letter with the handler's own last error.
One JSON line per handled message goes to stdout, flushed at once. ``queue exec`` at
``full`` durability acks a finished job's message (and writes its line) once the next
job has started: the ack's fsync overlaps that job instead of delaying it.

Signals: the first SIGINT/SIGTERM lets the current message finish and then stops; an idle
worker notices within a quarter of a second. A second signal interrupts the handler
(:class:`ColdStop`), releases the message without spending an attempt and exits 130. The
signal handler only sets flags, except for raising ColdStop into a running handler.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType

from localqueue import codec
from localqueue._signals import start_quietly
from localqueue.cli import exit_codes, interrupts
from localqueue.cli.common import emit, stderr_is_tty
from localqueue.cli.exit_codes import CliError
from localqueue.errors import (
    Empty,
    LeaseLostError,
    LocalQueueError,
    StoreError,
    StoreLockedError,
    StoreReplacedError,
)
from localqueue.queue import settle_while_leased

TYPE_CHECKING = False  # typing costs start-up time; mypy still reads these imports
if TYPE_CHECKING:
    from typing import Any

    from localqueue.message import QueueMessage
    from localqueue.queue import PersistentQueue
    from localqueue.retry.base import AttemptRecord, AttemptStore

__all__ = ["ColdStop", "Handler", "StopFlags", "WorkerOptions", "run_worker"]

#: A handler runs one message and returns None on success or ``last_error`` on failure.
Handler = Callable[["QueueMessage"], "dict[str, Any] | None"]

IDLE_SLICE = 0.25  # an idle worker checks its stop flag at least this often


class ColdStop(BaseException):
    """A second signal arrived while a handler was running."""


class StopFlags:
    """SIGINT/SIGTERM handling: count signals; interrupt a handler on the second one."""

    def __init__(self) -> None:
        self.signals = 0
        self.interruptible = False
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self._handle)

    def restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.signals += 1
        if self.signals >= 2 and self.interruptible:
            self.interruptible = False
            interrupts.interrupt(ColdStop(signum))


class WorkerOptions:
    """The loop's settings, from the flags of ``queue process`` / ``queue exec``. (A plain
    class: ``dataclasses`` would cost the worker 6 ms of start-up.)"""

    __slots__ = (
        "backoff",
        "block",
        "dead_letter",
        "forever",
        "idle_sleep",
        "max_delay",
        "max_jobs",
        "max_tries",
        "release_delay",
        "worker_id",
    )  # fmt: skip

    def __init__(
        self,
        *,
        max_jobs: int | None = None,
        forever: bool = False,
        block: bool = False,
        worker_id: str | None = None,
        max_tries: int = 3,
        backoff: str = "fixed",  # or "exponential"
        release_delay: float = 0.0,
        max_delay: float = 300.0,
        dead_letter: bool = True,
        idle_sleep: float = 1.0,
    ) -> None:
        self.max_jobs, self.forever, self.block = max_jobs, forever, block
        self.worker_id, self.max_tries, self.backoff = worker_id, max_tries, backoff
        self.release_delay, self.max_delay = release_delay, max_delay
        self.dead_letter, self.idle_sleep = dead_letter, idle_sleep

    @classmethod
    def from_flags(cls, *, no_dead_letter: bool = False, **flags: Any) -> WorkerOptions:
        """The options of ``queue process`` / ``queue exec`` from their flags' names."""
        return cls(dead_letter=not no_dead_letter, **flags)

    def retry_delay(self, attempts: int) -> float:
        """Seconds before a message that failed its ``attempts``-th attempt comes back."""
        if self.backoff == "exponential":
            return min(self.release_delay * 2.0 ** max(attempts - 1, 0), self.max_delay)
        return min(self.release_delay, self.max_delay)


class Heartbeat:
    """Extends the lease of the message being handled every third of the lease timeout."""

    def __init__(self, queue: PersistentQueue) -> None:
        self.queue = queue
        self.interval = max(queue.lease_timeout / 3, 0.05)
        self.lost = False
        self._cond = threading.Condition()
        self._message: QueueMessage | None = None
        self._since = 0.0
        self._stopped = False
        self._thread: threading.Thread | None = None

    def watch(self, message: QueueMessage) -> None:
        # No notify: an idle heartbeat wakes every interval on its own, so it sees this
        # message before its first beat is due (waking it per message costs a switch).
        with self._cond:
            self._message, self._since, self.lost = message, time.monotonic(), False
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="localqueue-heartbeat", daemon=True
                )
                start_quietly(self._thread)

    def unwatch(self) -> None:
        with self._cond:
            self._message = None

    def stop(self) -> None:
        with self._cond:
            self._stopped, self._message = True, None
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        with self._cond:
            while not self._stopped:
                message = self._message
                if message is None:
                    self._cond.wait(self.interval)
                    continue
                remaining = self._since + self.interval - time.monotonic()
                if remaining > 0:
                    self._cond.wait(remaining)
                    continue
                self._cond.release()
                try:
                    self.queue.extend_lease(message, self.queue.lease_timeout)
                    lost = False
                except LeaseLostError:
                    lost = True
                except LocalQueueError:  # busy store: try again at the next beat
                    lost = False
                finally:
                    self._cond.acquire()
                if self._message is message:
                    self.lost = self.lost or lost
                    self._since = time.monotonic()


class Progress:
    """``done / remaining, rate`` on a terminal's stderr while a drain runs."""

    def __init__(self, queue: PersistentQueue, enabled: bool) -> None:
        self.queue, self.enabled = queue, enabled
        self.started = time.monotonic()
        self.shown = 0.0
        self.done = 0

    def tick(self, held: int = 0) -> None:
        """One more message done; ``held``: messages leased for the next rounds."""
        self.done += 1
        now = time.monotonic()
        if not self.enabled or now - self.shown < 0.5:
            return
        self.shown = now
        remaining = self.queue.qsize() + held
        rate = self.done / max(now - self.started, 1e-9)
        sys.stderr.write(f"\r{self.done} done, {remaining} remaining, {rate:.1f}/s \x1b[K")
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled and self.shown:
            sys.stderr.write("\n")
            sys.stderr.flush()


def _unspend(attempts: AttemptStore, record: AttemptRecord) -> None:
    """Give back the attempt counted for an interrupted delivery. The contract has no
    decrement, so the record is rebuilt with one attempt fewer (the CLI reads only the
    count; the message itself keeps its last_error)."""
    attempts.clear(record.key)
    for _ in range(record.attempts - 1):
        attempts.record_attempt(record.key, record.first_attempt_at)


def _while_leased(message: QueueMessage, settle: Callable[[], object]) -> None:
    """:func:`~localqueue.queue.settle_while_leased`, saying on stderr why it waits."""

    def busy(left: float) -> None:
        exit_codes.warning(
            f"store is busy; still trying to settle {message.id} (lease ends in {left:.0f}s)"
        )

    settle_while_leased(message, settle, busy)


class Worker:
    def __init__(
        self,
        queue: PersistentQueue,
        attempts: AttemptStore,
        handle: Handler,
        options: WorkerOptions,
    ) -> None:
        self.queue, self.attempts, self.handle, self.options = queue, attempts, handle, options
        self.flags = StopFlags()
        self.heartbeat = Heartbeat(queue)
        self.spent: set[str] = set()  # ids released with a spent budget (--no-dead-letter)
        self.busy_for = 0  # consecutive looks for work that met a locked store
        self.handled = 0
        # One commit per store per message: an ack leases the next message in the same
        # commit, and the acked message's attempt record is forgotten in the commit that
        # counts the next attempt (or when the loop ends; a crash before then leaves a
        # record of a message that is gone, which nothing reads).
        self.prefetched: QueueMessage | None = None
        self.pending_clear: str | None = None
        # A handler that runs a child process (queue exec) says when the child has
        # started; the previous message's ack is then made while the job runs, so that
        # its fsync (or a database server's round trip) is off the critical path. The
        # message is held until then, and its line not yet written. With nothing to wait
        # for (durability "normal"), one commit for the ack and the next lease is faster:
        # on two cores the job and the worker would share one (measured).
        self.deferred: QueueMessage | None = None
        self.deferred_error: Exception | None = None
        self.overlap = (
            hasattr(handle, "started") and getattr(queue.store, "durability", None) != "normal"
        )
        if self.overlap:
            handle.started = self.flush  # type: ignore[attr-defined]

    def next_message(self) -> QueueMessage | None:
        """The next message, or None when the loop should look at its flags again (or,
        draining, stop because the queue is empty)."""
        options, queue = self.options, self.queue
        if self.prefetched is not None:
            message, self.prefetched = self.prefetched, None
            return message
        try:
            return queue.get_message(block=False, leased_by=options.worker_id)
        except Empty:
            if not (options.forever or options.block):
                return None  # draining: empty means done
        if options.block:
            try:
                return queue.get_message(True, IDLE_SLICE, leased_by=options.worker_id)
            except Empty:
                return None
        deadline = time.monotonic() + options.idle_sleep
        while not self.flags.signals and time.monotonic() < deadline:
            time.sleep(min(IDLE_SLICE, max(deadline - time.monotonic(), 0)))
        return None

    def back_off(self, exc: LocalQueueError) -> None:
        """The store stayed locked past its busy timeout (or failed: damage, disk
        trouble) while looking for work: say so, then wait (0.25 s, doubling up to 30 s)
        before looking again, rather than spinning on the error."""
        self.busy_for += 1
        pause = min(IDLE_SLICE * 2 ** (self.busy_for - 1), 30.0)
        exit_codes.warning(f"{exc}; looking for work again in {pause:g}s")
        deadline = time.monotonic() + pause
        while not self.flags.signals and time.monotonic() < deadline:
            time.sleep(min(IDLE_SLICE, max(deadline - time.monotonic(), 0)))

    def settle(self, message: QueueMessage, record: AttemptRecord, error: Any) -> None:
        queue, options = self.queue, self.options
        key = message.id
        if error is None:
            max_jobs = options.max_jobs
            more = not self.flags.signals and (max_jobs is None or self.handled + 1 < max_jobs)
            if more and self.overlap and self._lease_next():
                self.deferred = message  # acked once the next job has started
                self.pending_clear = key
                return
            if more:
                _while_leased(message, lambda: self._ack_and_lease(message))
            else:
                _while_leased(message, lambda: queue.ack(message))
            self.pending_clear = key
            status = "acked"
        elif record.attempts < options.max_tries:
            self.attempts.record_failure(key, codec.encode(error), exhausted=False)
            delay = options.retry_delay(record.attempts)
            _while_leased(message, lambda: queue.release(message, delay, error))
            status = "released"
        elif options.dead_letter:
            _while_leased(message, lambda: queue.dead_letter(message, error))
            self.attempts.clear(key)  # a requeued dead letter starts a fresh budget
            status = "dead"
        else:
            delay = options.retry_delay(record.attempts)
            _while_leased(message, lambda: queue.release(message, delay, error))
            self.attempts.clear(key)
            self.spent.add(key)
            status = "released"
        line = {"id": key, "queue": queue.name, "status": status, "attempts": message.attempts}
        line["error"] = error
        emit(line)

    def _ack_and_lease(self, message: QueueMessage) -> None:
        from localqueue.queue import message_from_row

        queue = self.queue
        row = queue.store.ack_and_lease(
            queue.name,
            message.id,
            message.lease_token,
            lease_timeout=queue.lease_timeout,
            leased_by=self.options.worker_id,
        )
        self.prefetched = None if row is None else message_from_row(row)

    def _lease_next(self) -> bool:
        """Lease the next message before acking the one just done (see ``deferred``);
        False when there is none, or the store did not answer (the ack then goes first
        and the loop looks for work as usual)."""
        try:
            self.prefetched = self.queue.get_message(False, leased_by=self.options.worker_id)
        except (Empty, LocalQueueError):
            return False
        return True

    def flush(self) -> None:
        """Ack the message held in ``deferred`` and write its line. Called while the next
        job runs, so an error is kept for :meth:`run_one` to raise once that job is
        settled, rather than raised into the job (which would stop it)."""
        message, self.deferred = self.deferred, None
        if message is None:
            return
        acked = False
        try:
            _while_leased(message, lambda: self.queue.ack(message))
            acked = True
            line = {"id": message.id, "queue": self.queue.name, "status": "acked"}
            emit({**line, "attempts": message.attempts, "error": None})
        except LeaseLostError:
            exit_codes.warning(f"lease of {message.id} expired before it was settled")
        except (LocalQueueError, CliError, OSError) as exc:
            self.deferred_error = exc
        except BaseException:  # a second signal: the loop's end acks it instead
            if not acked:
                self.deferred = message
            raise

    def _raise_deferred_error(self) -> None:
        exc, self.deferred_error = self.deferred_error, None
        if exc is not None:
            raise exc

    def run_one(self, message: QueueMessage) -> None:
        cleared, self.pending_clear = self.pending_clear, None
        if cleared is None:
            record = self.attempts.record_attempt(message.id, time.time())
        else:
            record = self.attempts.clear_and_record(cleared, message.id, time.time())
        if record.attempts > self.options.max_tries:
            self.flush()
            # Earlier deliveries spent the budget without settling (the worker died).
            error: dict[str, Any] | None = message.last_error or {
                "type": "RetryBudgetExhausted",
                "module": None,
                "message": f"{record.attempts - 1} attempts started and none finished",
            }
            self.settle(message, record, error)
            self._raise_deferred_error()
            return
        self.heartbeat.watch(message)
        flags = self.flags
        try:
            flags.interruptible = True
            if flags.signals >= 2:  # the second signal came before the handler started
                raise ColdStop
            error = self.handle(message)
            flags.interruptible = False
        except ColdStop:
            self.heartbeat.unwatch()
            self.queue.release(message)
            _unspend(self.attempts, record)
            line = {"id": message.id, "queue": self.queue.name, "status": "released"}
            emit({**line, "attempts": message.attempts, "error": None})
            raise
        finally:
            flags.interruptible = False
            self.heartbeat.unwatch()
        self.flush()  # if the job never started (it could not be spawned, say)
        if self.heartbeat.lost:
            exit_codes.warning(
                f"lost the lease of {message.id} while handling it; another worker has it now"
            )
            self._raise_deferred_error()
            return
        try:
            self.settle(message, record, error)
        except LeaseLostError:
            exit_codes.warning(f"lease of {message.id} expired before it was settled")
        self._raise_deferred_error()

    def _settle_bookkeeping(self) -> None:
        """At the loop's end: give back a message leased for a next round that will not
        come, and forget the last acked message's attempt record (best effort)."""
        self.flush()
        if self.deferred_error is not None:
            exit_codes.warning(str(self.deferred_error))
            self.deferred_error = None
        prefetched, self.prefetched = self.prefetched, None
        if prefetched is not None:
            with contextlib.suppress(LocalQueueError):
                self.queue.release(prefetched)
        cleared, self.pending_clear = self.pending_clear, None
        if cleared is not None:
            with contextlib.suppress(LocalQueueError):
                self.attempts.clear(cleared)

    def run(self) -> int:
        options = self.options
        draining = not (options.forever or options.block)
        progress = Progress(self.queue, draining and stderr_is_tty())
        self.flags.install()
        try:
            while not self.flags.signals and (
                options.max_jobs is None or self.handled < options.max_jobs
            ):
                try:
                    message = self.next_message()
                except StoreReplacedError:
                    raise  # its file is gone: only a fresh start sees the new one
                except (StoreLockedError, StoreError) as exc:
                    if draining:
                        raise
                    self.back_off(exc)  # a long-running worker outlives a held lock
                    continue
                self.busy_for = 0
                if message is None:
                    if draining:
                        break
                    continue
                if self.flags.signals:  # leased while a stop was requested: give it back
                    self.queue.release(message)
                    break
                if draining and message.id in self.spent:
                    # --no-dead-letter gave it a fresh budget: a drain must not loop on it.
                    self.queue.release(message)
                    break
                self.run_one(message)
                self.handled += 1
                progress.tick(held=self.prefetched is not None)
        except ColdStop:
            return exit_codes.INTERRUPTED
        finally:
            self.flags.restore()
            self.heartbeat.stop()
            progress.close()
            self._settle_bookkeeping()
        return exit_codes.INTERRUPTED if self.flags.signals >= 2 else exit_codes.OK


def run_worker(
    queue: PersistentQueue, attempts: AttemptStore, handle: Handler, options: WorkerOptions
) -> int:
    """Run the loop until drained / ``max_jobs`` / a signal; returns the exit code."""
    return Worker(queue, attempts, handle, options).run()


def check_options(options: WorkerOptions) -> None:
    """Usage errors in the worker options (before anything is leased)."""
    from localqueue.cli.common import check_seconds

    if options.max_jobs is not None and options.max_jobs < 0:
        raise exit_codes.UsageError(f"--max-jobs must be >= 0, got {options.max_jobs}")
    if options.max_tries < 1:
        raise exit_codes.UsageError(f"--max-tries must be >= 1, got {options.max_tries}")
    if options.backoff not in ("fixed", "exponential"):
        raise exit_codes.UsageError(
            f"--backoff must be 'fixed' or 'exponential', got {options.backoff!r}"
        )
    check_seconds("--release-delay", options.release_delay)
    check_seconds("--max-delay", options.max_delay)
    check_seconds("--idle-sleep", options.idle_sleep)


_STORE_SETTINGS = ("store_path", "retry_store_path", "durability", "lease_timeout")


def prepare(name: str, flags: dict[str, Any]) -> tuple[WorkerOptions, dict[str, Any]]:
    """A worker command's options and store settings from its flags (by their names),
    checked: usage errors come before anything is leased."""
    from localqueue.codec import validate_queue_name

    validate_queue_name(name)
    stores = {key: flags.pop(key, None) for key in _STORE_SETTINGS}
    options = WorkerOptions.from_flags(**flags)
    check_options(options)
    return options, stores


def serve(
    name: str,
    handle: Handler,
    options: WorkerOptions,
    *,
    store_path: str | None,
    retry_store_path: str | None,
    durability: str | None,
    lease_timeout: float | None,
) -> None:
    """Open the queue and the attempt store the settings name and run the worker loop.
    Raises SystemExit with the worker's exit code when it is not 0."""
    from localqueue.cli.common import open_queue, settings

    check_options(options)
    conf = settings(
        store_path=store_path,
        retry_store_path=retry_store_path,
        durability=durability,
        lease_timeout=lease_timeout,
    )
    queue = open_queue(name, conf)
    try:
        from localqueue.retry.stores import open_attempt_store

        attempts = open_attempt_store(conf.retry_store_path, durability=conf.durability)
        try:
            code = run_worker(queue, attempts, handle, options)
        finally:
            attempts.close()
    finally:
        queue.close()
    if code:
        raise SystemExit(code)
