"""The loop of :meth:`Worker.run <localqueue.worker.engine.Worker.run>`: the main
thread leases, counts attempts, hands deliveries to the slots where handlers run
(:mod:`localqueue.worker.slots`), settles what finished and writes outcomes; see
:mod:`localqueue.worker.engine` for what happens to one message and
:mod:`localqueue.worker.delivery` for the states of a delivery.

The loop owns the deliveries. At most one job of a message runs here at a time: a
message leased again while its earlier (lost) delivery's job still runs waits, holding
its lease, until that job has stopped. A finished delivery is kept, its lease alive,
until its commit succeeds: a store error on the commit is retried with backoff for as
long as the lease lasts. Outcomes are reported after their commit; a report that fails
(stdout's reader left) stops leasing, never settling.

Where a commit waits on the disk or a server, new jobs are leased and started first and
the finished ones settled while they run; finished messages are collected together, so
one commit settles several. Signals only count (and wake the loop): the first stops
leasing, the second stops the running jobs and gives only their messages back (see
:mod:`localqueue.worker.stopping`).
"""

from __future__ import annotations

import contextlib
import queue as stdlib_queue
import time
from typing import Any, NamedTuple

import tenacity

from localqueue.errors import (
    Empty,
    LocalQueueError,
    StoreError,
    StoreLockedError,
    StoreReplacedError,
)
from localqueue.message import QueueMessage
from localqueue.outcome import Outcome
from localqueue.worker.delivery import Delivery, State, key_of
from localqueue.worker.engine import Cancelled, Finished, RunSummary, Worker, timed
from localqueue.worker.slots import ColdStop, Slots
from localqueue.worker.stopping import Stopping

__all__ = ["Loop"]

IDLE_SLICE = 0.25  # an idle worker looks at its stop flag at least this often
_POLL_MIN, _POLL_MAX = 0.002, 0.1  # a blocking worker with free slots looks for work so often
# A worker whose store keeps failing while it looks for work pauses this long (0.25 s,
# doubling up to 30 s) before looking again.
_STORE_BACKOFF = tenacity.wait_exponential(multiplier=IDLE_SLICE, max=30.0)
# A commit that failed is tried again after 0.05 s, doubling up to 2 s, while the
# leases last.
_SETTLE_BACKOFF = tenacity.wait_exponential(multiplier=0.025, max=2.0)


class Lost(NamedTuple):
    """An event from the heartbeat: this delivery's lease is gone."""

    message: QueueMessage


class Loop:
    """One :meth:`Worker.run`: the main thread's lease / start / settle cycle."""

    def __init__(
        self,
        worker: Worker,
        *,
        forever: bool,
        block: bool,
        max_jobs: int | None,
        idle_sleep: float,
    ) -> None:
        if max_jobs is not None and max_jobs < 0:
            raise ValueError(f"max_jobs must be >= 0, got {max_jobs!r}")
        if idle_sleep < 0:
            raise ValueError(f"idle_sleep must be >= 0, got {idle_sleep!r}")
        self.worker = worker
        worker.signals = 0  # a run stopped by a signal does not stop the next one
        self.queue = worker.queue
        self.forever, self.block, self.max_jobs = forever, block, max_jobs
        self.idle_sleep = idle_sleep
        self.draining = not (forever or block)
        self.summary = RunSummary()
        #: Deliveries whose job ended (a Delivery), leases lost (Lost), signals (None).
        self.events: stdlib_queue.SimpleQueue[Delivery | Lost | None] = stdlib_queue.SimpleQueue()
        self.slots = Slots(worker, worker.config.concurrency, self.events)
        # Message id -> the delivery whose job runs here. Keyed by id on purpose: it is
        # what keeps two deliveries of one message from running at once in this worker.
        self.running: dict[str, Delivery] = {}
        # Message id -> a later delivery leased while the earlier one's job still runs
        # (its lease was lost): it starts, in the same slot, once that job has ended.
        self.parked: dict[str, Delivery] = {}
        self.unsettled: list[Delivery] = []  # finished, kept until their commit succeeds
        # Leased and counted while the job before them ran (see _job_started): they start
        # as soon as it ends, or are given back if the run stops first.
        self.next_up: list[Delivery] = []
        self.settle_failures = 0
        self.settle_at = 0.0  # monotonic: when to try a failed commit again
        self.started = 0  # messages started (max_jobs counts these)
        self.to_clear: list[str] = []  # settled for good since the last count: forget them
        self.spent: set[str] = set()  # released with a fresh budget: a drain stops at them
        self.stop_leasing = False
        self.failure: BaseException | None = None  # raised once the running jobs are settled
        self.store_failures = 0
        self.pause = _POLL_MIN
        # Where a commit waits on the disk or a server, new jobs start before the
        # finished ones are settled (their commit overlaps the jobs); where it does not
        # (durability "normal"), one commit for both is faster: on two cores the jobs
        # and the worker share the CPU (measured: queue exec -- true, 0.82 ms a job).
        # A handler running in this thread leaves nothing to overlap, unless it runs its
        # job in a process of its own and says when that started (``started``, queue
        # exec's): the commit, and the lease of the next message, are made then, while
        # the job runs (see _job_started).
        handler: Any = worker.handler
        tells_start = self.slots.inline and hasattr(handler, "started")
        if tells_start:
            handler.started = self._job_started
        self.overlap = getattr(self.queue.store, "durability", None) != "normal" and (
            not self.slots.inline or tells_start
        )
        self.stopping = Stopping(self)
        self._retrying = tenacity.Retrying()  # what the back-off states point to

    def _job_started(self) -> None:
        """Called by a handler running in this thread once its job runs in a process of
        its own: settle what finished before it and lease (and count) the next message,
        in one commit, while the job runs; the next job then starts as soon as this one
        ends, with no store work between them."""
        settle = bool(self.unsettled) and time.monotonic() >= self.settle_at
        ahead = self._ahead()
        if not settle and not ahead:
            return
        self.slots.inline_running = False  # a second signal must not cut into the commit
        try:
            leased = self._settle(ahead) if settle else self._lease(ahead)
            self._start(leased, now=False)
        except StoreReplacedError as exc:  # its file is gone: the run ends after this job
            if self.failure is None:
                self.failure = exc
        except (StoreLockedError, StoreError):
            pass  # leasing ahead can wait: the loop leases (and backs off) on its own
        finally:
            self.slots.inline_running = True
        if self.worker.signals >= 2:  # it came during the commit: stop the job now
            if not self.slots.stoppable:
                raise ColdStop
            self.stop_running()

    def _ahead(self) -> int:
        """How many messages to lease while the running job runs (at most one: the next
        job of a worker that runs one at a time)."""
        if self.next_up or self.parked or not self._may_lease():
            return 0
        if self.max_jobs is not None and self.started >= self.max_jobs:
            return 0
        return 1

    def stop_running(self) -> None:
        """Ask every running job to stop (from any thread: the notice thread does it for
        a stoppable handler running in the main thread)."""
        for delivery in list(self.running.values()):
            delivery.stop_requested = True
            self.slots.cancel(delivery.message, False)

    def _on_lost(self, message: QueueMessage) -> None:
        """From the heartbeat's thread: stop that delivery's job now, tell the loop."""
        self.slots.cancel(message, False)
        self.events.put(Lost(message))

    # the cycle

    def _may_lease(self) -> bool:
        """No stop, failure or failed report holds leasing up."""
        return not (
            self.worker.signals
            or self.stop_leasing
            or self.failure is not None
            or self.summary.report_error is not None
            or self.settle_failures
        )

    def want(self) -> int:
        """How many messages to lease now."""
        if not self._may_lease():
            return 0
        held = len(self.running) + len(self.parked) + len(self.next_up)
        free = self.worker.config.concurrency - held
        if self.max_jobs is not None:
            free = min(free, self.max_jobs - self.started - len(self.next_up))
        return max(free, 0)

    def busy(self) -> bool:
        """Whether anything of this run is still running, waiting to start or unsettled."""
        return bool(self.running or self.parked or self.next_up or self.unsettled)

    def run(self) -> RunSummary:
        worker = self.worker
        worker.attempt_store  # noqa: B018 - open it first: a broken store leases nothing
        worker.heartbeat.on_lost = self._on_lost
        self.stopping.install()
        try:
            warned = False
            while True:
                if worker.signals >= 2:
                    self.stopping.cold_stop()
                    break
                if worker.signals and not warned:
                    warned = True
                    if self.running and not self.slots.inline:  # (inline: it is done)
                        worker.log(
                            f"finishing {len(self.running)} running job(s);"
                            " press Ctrl-C again to stop them"
                        )
                try:
                    leased = self._cycle()
                except ColdStop:  # raised into a handler running in this thread
                    self.stopping.cold_stop()
                    break
                if not self.busy():
                    if self.draining and self.want() and self._held_by_a_limit():
                        continue  # it waited for the limit to let a job start
                    if self.draining or not self.want():
                        break
                    self._idle()
                    continue
                self._wait(leased)
        finally:
            self._give_back_counted()  # (an error ended the run before they started)
            self.stopping.restore()
            self.slots.close()
            worker.heartbeat.close()
            worker.heartbeat.on_lost = None
            self._forget_settled()
        if self.failure is not None:
            raise self.failure
        return self.summary

    def _held_by_a_limit(self) -> bool:
        """A drain found nothing more to lease. When a limit of the queue (``queue
        limit``) holds ready messages back, they are work still to do: wait until one
        may start (or a while: another worker's settle frees a slot) and say True. When
        the queue is paused, say so (the drain ends, exit 0)."""
        store, name = self.queue.store, self.queue.name
        try:
            reason, _ = store.held_back(name)
            if reason == "paused":
                self.worker.log(f"queue {name!r} is paused; leaving its messages")
                return False
            due = store.next_visible_in(name)
        except (StoreLockedError, StoreError):
            return False
        if reason is None:  # nothing holds: the drain is done, unless a limit let go
            return due == 0.0  # (a window opened, a slot freed) since it leased: look again
        self._sleep(IDLE_SLICE if due is None else min(max(due, _POLL_MIN), IDLE_SLICE))
        return True

    def _paused(self) -> bool:
        """Whether the queue is paused now (False when the store cannot say)."""
        try:
            return bool(self.queue.settings().paused)
        except (StoreLockedError, StoreError):
            return False

    def _cycle(self) -> list[QueueMessage]:
        """Settle what finished and start new jobs in the free slots; returns what it
        leased."""
        if self.next_up:
            if self.running or self.parked:
                return []  # the job before them still runs
            if not self._may_lease():
                self._give_back_counted()
            elif time.time() - self.next_up[0].started_at > IDLE_SLICE and self._paused():
                # Leased a while ago, ahead of a long job: the queue was paused since.
                self._give_back_counted()
            else:
                ahead, self.next_up = self.next_up, []
                self._launch(ahead)  # its job settles what finished meanwhile
                return []
        want = self.want()
        settle = bool(self.unsettled) and time.monotonic() >= self.settle_at
        if not settle and not want:
            return []
        try:
            if settle and want and self.overlap:
                leased = self._lease_if_free(want)
                self._start(leased)
                released = any(_status(d) == "released" for d in self.unsettled)
                self._settle()
                if released and len(leased) < self.want():  # due again at once, maybe
                    more = self._lease_if_free(self.want())
                    self._start(more)
                    leased += more
                return leased
            leased = self._settle(want) if settle else self._lease(want)
            if settle and not want and self.want():  # a failed commit held leasing up
                leased = self._lease(self.want())
        except StoreReplacedError:
            raise  # its file is gone: only a fresh start sees the new one
        except (StoreLockedError, StoreError) as exc:
            self._lease_failed(exc)
            return []
        self.store_failures = 0
        self._start(leased)
        return leased

    def _lease_failed(self, exc: LocalQueueError) -> None:
        """Leasing met a busy or failing store: a drain ends (once what runs is
        settled); a long-running worker outlives it."""
        if self.draining:
            if self.failure is None:
                self.failure = exc
        else:
            self._back_off(exc)

    def _lease_if_free(self, n: int) -> list[QueueMessage]:
        """Lease before settling: a busy store leases nothing then (the settle that
        follows keeps trying on its own, and new work can wait)."""
        try:
            return self._lease(n)
        except StoreReplacedError:
            raise
        except (StoreLockedError, StoreError):
            return []

    def _lease(self, n: int) -> list[QueueMessage]:
        return self.queue.get_messages(n, leased_by=self.worker.config.worker_id) if n else []

    # settling

    def _settle(self, lease: int = 0) -> list[QueueMessage]:
        """Commit the unsettled deliveries (and lease up to ``lease`` messages in the
        same transaction). A store error keeps them for a later try; see
        :meth:`_settle_failed`."""
        batch, self.unsettled = self.unsettled, []
        for delivery in batch:
            delivery.state = State.SETTLING
        try:
            verdicts = [timed(_verdict(d), d.started_at, d.finished_at) for d in batch]
            applied, leased = self.worker.commit(verdicts, lease)
        except (StoreLockedError, StoreError) as exc:
            for delivery in batch:
                delivery.state = State.FINISHED
            self.unsettled = batch + self.unsettled
            if isinstance(exc, StoreReplacedError):
                raise
            self._settle_failed(exc)
            return []
        self.settle_failures = 0
        for delivery, done in zip(batch, applied, strict=True):
            self.worker.heartbeat.drop(delivery.message)
            if not done:
                self._lose(delivery, "it expired before it was settled")
                continue
            delivery.state = State.SETTLED
            self._count(delivery)
            self._report(delivery)
        return leased

    def _settle_failed(self, exc: LocalQueueError) -> None:
        """A commit failed: try again after a pause, while the leases last (the heartbeat
        keeps them alive if it can). Deliveries whose lease ended meanwhile are given up:
        their messages will be delivered again, and the run ends with an error."""
        self.settle_failures += 1
        state = tenacity.RetryCallState(self._retrying, None, (), {})
        state.attempt_number = self.settle_failures
        self.settle_at = time.monotonic() + float(_SETTLE_BACKOFF(state))
        now = time.time()
        expired = [d for d in self.unsettled if (d.message.lease_expires_at or 0.0) <= now]
        for delivery in expired:
            self.unsettled.remove(delivery)
            self.worker.heartbeat.drop(delivery.message)
            delivery.state = State.LOST
            self.summary.lost += 1
        if expired:
            ids = ", ".join(d.id for d in expired)
            self.failure = StoreError(
                f"could not settle {ids} before the lease ended ({exc}); it will be delivered again"
            )
            self.worker.log(str(self.failure))
        elif self.settle_failures & (self.settle_failures - 1) == 0:  # 1, 2, 4, 8...
            self.worker.log(f"{exc}; still trying to settle {len(self.unsettled)} finished job(s)")

    def _count(self, delivery: Delivery) -> None:
        verdict = delivery.verdict
        assert verdict is not None and verdict.outcome is not None
        status = verdict.outcome.status
        if status == "acked":
            self.summary.acked += 1
            self.to_clear.append(delivery.id)
        elif status == "dead":
            self.summary.dead += 1
            self.to_clear.append(delivery.id)  # a requeued dead letter starts afresh
        else:
            self.summary.released += 1
            if verdict.spent:
                self.spent.add(delivery.id)
                self.to_clear.append(delivery.id)

    def _report(self, delivery: Delivery) -> None:
        """Tell ``on_outcome`` (after the commit). A failed report stops leasing; the
        jobs still running are finished and settled without reports."""
        if self.summary.report_error is not None:
            return
        assert delivery.verdict is not None
        try:
            self.worker.report(delivery.verdict, delivery.started_at, delivery.finished_at)
        except Exception as exc:
            self.summary.report_error = exc

    def _lose(self, delivery: Delivery, why: str) -> None:
        self.worker.heartbeat.drop(delivery.message)
        delivery.state = State.LOST
        self.summary.lost += 1
        self.worker.log(f"lost the lease of {delivery.id}: {why}; it will be delivered again")

    # starting

    def _start(self, leased: list[QueueMessage], *, now: bool = True) -> None:
        """Hold the leased messages' leases and start their jobs (a message whose
        earlier delivery still runs here waits for it); with ``now`` false, count their
        attempts and keep them in :attr:`next_up` instead."""
        if self.draining and any(m.id in self.spent for m in leased):
            # Released with a fresh budget by this drain: it must not loop on them.
            self._give_back([m for m in leased if m.id in self.spent])
            leased = [m for m in leased if m.id not in self.spent]
            self.stop_leasing = True
        runnable: list[Delivery] = []
        for message in leased:
            delivery = Delivery(message)
            self.worker.heartbeat.hold(message)
            if message.id in self.running:
                earlier = self.parked.pop(message.id, None)
                if earlier is not None:  # its lease was lost before it could start
                    self.worker.heartbeat.drop(earlier.message)
                self.parked[message.id] = delivery
            else:
                runnable.append(delivery)
        self._run(runnable, now=now)

    def _run(self, deliveries: list[Delivery], *, now: bool = True) -> None:
        """Count the deliveries' attempts (one commit) and hand them to the slots (or,
        unless ``now``, keep them in :attr:`next_up`)."""
        if not deliveries:
            return
        clear, self.to_clear = self.to_clear, []
        try:
            records = self.worker.count([d.message for d in deliveries], clear)
        except BaseException as exc:
            self.to_clear = clear + self.to_clear
            self._give_back([d.message for d in deliveries])
            if isinstance(exc, StoreReplacedError) or not isinstance(
                exc, StoreLockedError | StoreError
            ):
                raise
            if now:  # (ahead of time, the loop's own lease will meet it again)
                self._lease_failed(exc)  # a busy attempt store, backed off like the queue's
            return
        self.store_failures = 0
        for delivery, record in zip(deliveries, records, strict=True):
            delivery.record = record
        if now:
            self._launch(deliveries)
        else:
            self.next_up.extend(deliveries)

    def _launch(self, deliveries: list[Delivery]) -> None:
        """Hand counted deliveries to the slots."""
        for delivery in deliveries:
            delivery.started_at = time.time()
            self.running[delivery.id] = delivery
            self.started += 1
            self.slots.submit(delivery)
        self.pause = _POLL_MIN

    def _give_back_counted(self) -> None:
        """Give back the deliveries leased ahead (:attr:`next_up`) that will not start:
        released, their attempts not spent."""
        ahead, self.next_up = self.next_up, []
        if not ahead:
            return
        self._give_back([d.message for d in ahead])
        with contextlib.suppress(LocalQueueError):
            for delivery in ahead:
                self.worker.attempt_store.uncount_attempt(delivery.id)

    def _give_back(self, messages: list[QueueMessage]) -> None:
        """Release messages whose jobs never started (nothing was counted)."""
        for message in messages:
            self.worker.heartbeat.drop(message)
        with contextlib.suppress(LocalQueueError):
            self.queue.settle_many([Outcome(m, "released") for m in messages])

    # waiting

    def _wait(self, leased: list[QueueMessage]) -> None:
        """Wait until a job finishes, a lease is lost or a signal comes, and take every
        event there is by then. With free slots, look for new work again after a while:
        soon for a blocking worker, each ``idle_sleep`` for a ``forever`` one; with a
        failed commit, when it is due again."""
        timeout = IDLE_SLICE
        if self.want():
            if self.block:
                timeout = self.pause
                self.pause = min(self.pause * 2, _POLL_MAX)
            elif self.forever and not leased:
                timeout = max(self.idle_sleep, _POLL_MIN)
        if self.unsettled:
            timeout = min(timeout, max(self.settle_at - time.monotonic(), 0.0))
        try:
            event = self.events.get(timeout=timeout) if timeout > 0 else self.events.get_nowait()
        except stdlib_queue.Empty:
            return
        while True:
            self._apply(event)
            try:
                event = self.events.get_nowait()
            except stdlib_queue.Empty:
                return

    def _apply(self, event: Delivery | Lost | None) -> None:
        if event is None:  # a signal: the loop looks at the count
            return
        if isinstance(event, Lost):
            self._lost(event.message)
        else:
            self._ended(event)

    def _lost(self, message: QueueMessage) -> None:
        """The heartbeat found this delivery's lease gone (its job is being stopped)."""
        key = key_of(message)
        running = self.running.get(message.id)
        if running is not None and running.key == key and running.state is State.RUNNING:
            self._lose(running, "it expired while the job ran")
            return
        for delivery in self.unsettled:
            if delivery.key == key:
                self.unsettled.remove(delivery)
                self._lose(delivery, "it expired before it was settled")
                return
        parked = self.parked.get(message.id)
        if parked is not None and parked.key == key:
            del self.parked[message.id]
            self._lose(parked, "it expired before the job could start")
        for delivery in self.next_up:
            if delivery.key == key:
                self.next_up.remove(delivery)
                self._lose(delivery, "it expired before the job could start")
                return

    def _ended(self, delivery: Delivery) -> None:
        """A job ended: free its slot (starting a delivery that waited for it), then
        keep its verdict for the commit, or drop it."""
        if self.running.get(delivery.id) is delivery:
            del self.running[delivery.id]
        waiting = self.parked.pop(delivery.id, None)
        if waiting is not None:
            self._run([waiting])
        verdict = _verdict(delivery)
        if delivery.state is State.LOST:
            return  # its result is discarded: the message will be delivered again
        if delivery.stop_requested:  # by a second signal: the stop settles or gives it back
            self.stopping.ended_or_stopped(delivery)
            return
        if verdict.outcome is None:
            if self.worker.heartbeat.is_lost(delivery.message):
                self._lose(delivery, "it expired while the job ran")
                return
            # Failed outside the handler (its attempt store, say), or stopped: give the
            # message back; such an error ends the run once the others are settled.
            error = verdict.error
            if self.failure is None and not isinstance(error, Cancelled):
                self.failure = error
            self._give_back([delivery.message])
            return
        delivery.state = State.FINISHED
        self.unsettled.append(delivery)

    # idle

    def _idle(self) -> None:
        """Nothing running and nothing to lease: wait for work (``block``) or a while
        (``forever``), watching for signals."""
        if self.block:
            try:
                message = self.queue.get_message(
                    True, IDLE_SLICE, leased_by=self.worker.config.worker_id
                )
            except Empty:
                return
            except StoreReplacedError:
                raise
            except (StoreLockedError, StoreError) as exc:
                self._back_off(exc)
                return
            self.store_failures = 0
            self._start([message])
            return
        self._sleep(self.idle_sleep)

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self.worker.signals and (left := deadline - time.monotonic()) > 0:
            try:
                event = self.events.get(timeout=min(IDLE_SLICE, left))
            except stdlib_queue.Empty:
                continue
            self._apply(event)

    def _back_off(self, exc: LocalQueueError) -> None:
        """The store stayed locked past its busy timeout (or failed: damage, disk
        trouble) while looking for work: say so, then wait before looking again."""
        self.store_failures += 1
        state = tenacity.RetryCallState(self._retrying, None, (), {})
        state.attempt_number = self.store_failures
        pause = float(_STORE_BACKOFF(state))
        self.worker.log(f"{exc}; looking for work again in {pause:g}s")
        self._sleep(pause)

    def _forget_settled(self) -> None:
        clear, self.to_clear = self.to_clear, []
        if clear:
            with contextlib.suppress(LocalQueueError):
                self.worker.attempt_store.record_attempts([], time.time(), clear=clear)


def _verdict(delivery: Delivery) -> Finished:
    assert delivery.verdict is not None
    return delivery.verdict


def _status(delivery: Delivery) -> str | None:
    outcome = _verdict(delivery).outcome
    return None if outcome is None else outcome.status
