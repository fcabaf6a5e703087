"""``queue process`` and ``queue exec`` as clients of :class:`localqueue.Worker`.

This module turns the commands' flags into a :class:`~localqueue.PersistentWorkerConfig`
(the retry wait is a Tenacity strategy), runs the engine on the queue and attempt store
the settings name, writes one JSON line per handled message on stdout, says on stderr
what a person should know (a stop request, what a second signal released, a busy
store), and picks the exit code.

Exit codes of a drain (no ``--forever``/``--block``): 0 when every handled message was
acked (or there was none), 5 when at least one was dead-lettered, 6 when some failed and
were released for a later attempt (none dead); 130 after a second signal.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO

from localqueue.cli import exit_codes
from localqueue.cli.common import emit, stderr_is_tty

if TYPE_CHECKING:  # the engine and tenacity load when a worker starts, not with the CLI
    from localqueue.queue import PersistentQueue
    from localqueue.worker import PersistentWorkerConfig, RunSummary, Settled

__all__ = ["MAX_CONCURRENCY", "WorkerFlags", "serve"]

MAX_CONCURRENCY = 256  # jobs one worker runs at once (-j); the watchdog has room for them
MIN_LEASE = 1.0  # seconds: localqueue.worker.heartbeat.MIN_LEASE, without importing it
DEFAULT_IDLE_SLEEP = 1.0


@dataclass(frozen=True)
class WorkerFlags:
    """The flags ``queue process`` and ``queue exec`` share, by their names."""

    concurrency: int = 1
    max_jobs: int | None = None
    forever: bool = False
    block: bool = False
    worker_id: str | None = None
    max_tries: int = 3
    backoff: str = "exponential"
    release_delay: float = 1.0
    max_delay: float = 300.0
    no_dead_letter: bool = False
    idle_sleep: float | None = None  # None: not given (DEFAULT_IDLE_SLEEP)
    lease_timeout: float | None = None
    store_path: str | None = None
    retry_store_path: str | None = None
    durability: str | None = None
    to: str | None = None
    strict: bool = False  # a queue name the store never held: exit 4, not a warning

    def check(self) -> None:
        """Usage errors, before anything is opened or leased."""
        from localqueue.cli.common import check_seconds

        if not 1 <= self.concurrency <= MAX_CONCURRENCY:
            raise exit_codes.UsageError(
                f"--concurrency must be between 1 and {MAX_CONCURRENCY}, got {self.concurrency}"
            )
        if self.max_jobs is not None and self.max_jobs < 0:
            raise exit_codes.UsageError(f"--max-jobs must be >= 0, got {self.max_jobs}")
        if self.max_tries < 1:
            raise exit_codes.UsageError(f"--max-tries must be >= 1, got {self.max_tries}")
        if self.backoff not in ("fixed", "exponential"):
            raise exit_codes.UsageError(
                f"--backoff must be 'fixed' or 'exponential', got {self.backoff!r}"
            )
        check_seconds("--release-delay", self.release_delay)
        check_seconds("--max-delay", self.max_delay)
        if self.idle_sleep is not None:
            check_seconds("--idle-sleep", self.idle_sleep)
            if not self.forever or self.block:
                raise exit_codes.UsageError(
                    "--idle-sleep needs --forever (without --block): only such a worker"
                    " pauses between looks for work"
                )
        if self.lease_timeout is not None and not self.lease_timeout >= MIN_LEASE:
            raise exit_codes.UsageError(
                f"--lease-timeout must be at least {MIN_LEASE:g} second(s), got"
                f" {self.lease_timeout:g}: the heartbeat extends a lease every third of it"
            )
        self.config()  # what the engine's config refuses (an invalid --to queue name)

    def wait(self) -> Any:
        """The retry wait as a Tenacity strategy: ``--release-delay`` every time, or
        doubling from it up to ``--max-delay`` plus up to a second of jitter (never
        more than ``--release-delay``), so that many failing jobs do not retry in step."""
        import tenacity

        delay, cap = self.release_delay, self.max_delay
        if self.backoff == "fixed":
            return tenacity.wait_fixed(min(delay, cap))
        exponential = tenacity.wait_exponential(multiplier=delay, max=cap)
        jitter = min(1.0, delay)
        return exponential + tenacity.wait_random(0, jitter) if jitter else exponential

    def config(self) -> PersistentWorkerConfig:
        from localqueue.worker import PersistentWorkerConfig

        return PersistentWorkerConfig(
            max_tries=self.max_tries,
            wait=self.wait(),
            dead_letter_on_failure=not self.no_dead_letter,
            release_delay=self.release_delay,
            worker_id=self.worker_id,
            concurrency=self.concurrency,
            to=self.to,
        )


class Progress:
    """``done, remaining, rate`` on a terminal's stderr while a drain runs (remaining:
    ready and in flight, these jobs included)."""

    def __init__(self, queue: PersistentQueue, enabled: bool) -> None:
        self.queue, self.enabled = queue, enabled
        self.started = time.monotonic()
        self.shown = 0.0
        self.done = 0

    def tick(self) -> None:
        self.done += 1
        now = time.monotonic()
        if not self.enabled or now - self.shown < 0.5:
            return
        self.shown = now
        stats = self.queue.stats()
        remaining = stats.ready + stats.inflight
        rate = self.done / max(now - self.started, 1e-9)
        sys.stderr.write(f"\r{self.done} done, {remaining} remaining, {rate:.1f}/s \x1b[K")
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled and self.shown:
            sys.stderr.write("\n")
            sys.stderr.flush()


def exit_code(summary: RunSummary, draining: bool) -> int:
    if summary.interrupted:
        return exit_codes.INTERRUPTED
    if not draining:
        return exit_codes.OK
    if summary.dead:
        return exit_codes.JOBS_DEAD
    if summary.released:
        return exit_codes.JOBS_RETRYING
    return exit_codes.OK


STORE_POLL = 0.5  # seconds between looks for a store that does not exist yet


def _open_queue(name: str, conf: Any, *, wait: bool) -> PersistentQueue:
    """Open the queue; a long-running worker (``wait``) whose store does not exist yet
    waits for it (a service started before the first ``queue add``), saying so once.
    A drain exits 1 ``no such store``."""
    from localqueue.cli.common import NoSuchStore, open_queue, store_label

    said = False
    while True:
        try:
            return open_queue(name, conf)
        except NoSuchStore:
            if not wait:
                raise
        if not said:
            said = True
            exit_codes.note(
                f"waiting for {store_label(conf.store_path)} (only queue add creates a store)"
            )
        time.sleep(STORE_POLL)


def serve(
    name: str,
    handler: Any,
    flags: WorkerFlags,
    *,
    takes_message: bool = False,
    stdout: TextIO | None = None,
    show_output: bool = False,
) -> None:
    """Open the queue and the attempt store the settings name and run the engine with
    ``handler`` (``flags`` already checked by the command); outcome lines go to ``stdout``
    (default: ``sys.stdout``), with the handler's result as ``"output"`` when
    ``show_output``. Raises SystemExit with the exit code when it is not 0."""
    from localqueue.cli.common import require_backend, settings
    from localqueue.retry.stores import open_attempt_store
    from localqueue.worker import Worker

    conf = settings(
        store_path=flags.store_path,
        retry_store_path=flags.retry_store_path,
        durability=flags.durability,
        lease_timeout=flags.lease_timeout,
        strict=flags.strict or None,
    )
    draining = not (flags.forever or flags.block)
    queue = _open_queue(name, conf, wait=not draining)
    progress = Progress(queue, draining and stderr_is_tty())

    def on_outcome(settled: Settled) -> None:
        line = {
            "id": settled.message.id,
            "queue": queue.name,
            "status": settled.status,
            "attempts": settled.message.attempts,
            "error": settled.error,
            "finished_at": round(settled.finished_at, 6),
            "duration": round(settled.duration, 6),
        }
        if show_output:
            line["output"] = settled.result
        emit(line, stdout)
        progress.tick()

    try:
        require_backend(conf.retry_store)  # a missing extra names its install
        attempts = open_attempt_store(conf.retry_store, durability=conf.durability)
        try:
            config = flags.config()
            worker = Worker(
                queue,
                handler,
                config,
                retry_store=attempts,
                takes_message=takes_message,
                on_outcome=on_outcome,
                log=exit_codes.note,
            )
            summary = worker.run(
                forever=flags.forever,
                block=flags.block,
                max_jobs=flags.max_jobs,
                idle_sleep=DEFAULT_IDLE_SLEEP if flags.idle_sleep is None else flags.idle_sleep,
            )
        finally:
            progress.close()
            attempts.close()
    finally:
        queue.close()
    if summary.released_ids:
        released = len(summary.released_ids)
        exit_codes.note(
            f"stopped; released {released} message(s); their retry budget was not spent"
        )
    report_error = summary.report_error
    if report_error is not None and not isinstance(report_error, BrokenPipeError):
        raise report_error  # a full disk, say: the settlements stand, the lines are lost
    if report_error is not None:
        # stdout's reader left (| head): what ran is settled and nothing of this worker
        # is left in flight; the lines nobody reads are not an error.
        from localqueue.cli.app import silence_stdout

        silence_stdout()
    code = exit_code(summary, draining)
    if summary.abandoned:
        # Handlers that a second signal could not stop (Python code in threads): their
        # messages are released; the process ends now rather than wait for them.
        with contextlib.suppress(OSError, ValueError):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)
    if code:
        raise SystemExit(code)
