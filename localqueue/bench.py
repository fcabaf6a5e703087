"""Measure localqueue on this machine's disk: ``python -m localqueue.bench``.

Runs the same workloads as the side-by-side benchmark on a fresh store per run, at each
durability level asked for, and prints the median of the rounds as a table, or JSON with
``--json``:

* ``put``, ``put_many``, ``get_ack``, ``roundtrip`` (put+get+ack): msgs/s in one process;
  ``put_key``: ``put`` with a fresh deduplication key each; ``get_ack_prio``: ``get_ack``
  of messages spread over 10 priority levels; ``settle``: a worker's steps, each one
  commit that acks the last message (with its duration, exit code and output) and
  leases the next; ``get_ack_keep``, ``roundtrip_keep``, ``settle_keep``: the same on a
  queue that keeps a history (``keep`` 7d);
* ``mp``: 2 producer and 2 consumer processes on one file, msgs/s from a common start to
  the last ack (a run that loses or duplicates a message fails);
* ``cli``: the ``localqueue`` command: ``queue add --value`` against ``python -c pass``,
  JSON Lines on stdin, and a ``queue exec -- true`` drain against as many bare spawns of
  ``true`` (ratios: 1.0 would cost nothing beyond the interpreter or the spawns);
* ``sql_put``, ``sql_get_ack``, ``sql_roundtrip``: SQLite's own ceiling for the first
  three: the store's statements on its schema and pragmas (a lease skips its fsync at
  full, as in the store), run in a bare loop with no localqueue code around them (always
  on a SQLite file);
* ``exec_parallel``: a ``queue exec -j N -- sleep 0.05`` drain of 1,000 messages for N in
  1, 4, 8, 16, each beside ``xargs -P N`` (and ``parallel -j N`` where installed)
  running the same 1,000 jobs with no queue at all: wall time, jobs/s, the wall-time
  ratio to xargs, and the jobs/s of each N against ``-j 1`` (``--exec-jobs``,
  ``--exec-sleep``, ``--exec-concurrency``);
* ``exec_true_parallel``: a ``queue exec -j 4 -- true`` drain against ``-j 1``, in
  jobs/s (``--exec-true-jobs``): on two cores, what group commit (several acks per
  fsync at full) buys when the jobs themselves cost nothing;
* ``cli_keys``: ``queue add --key-field id`` of ``--cli-lines`` JSON Lines on stdin (each
  a fresh key) against the same lines without a key, in msgs/s, rounds interleaved;
* ``limits``: queue limits kept across worker processes: a ``--rate 100/s`` drain of
  ``--limit-jobs`` quick jobs by 4 workers x ``-j 4`` (its wall time against the ideal
  jobs / rate, and the most job starts in any 1 s, from the jobs' own clock), and a
  ``--max-inflight 3`` drain of 200 jobs of 20 ms by 4 workers x ``-j 4`` (the most
  jobs running at once, from their own start and end).

The exec workloads run their rounds interleaved (each N, then xargs, then parallel,
in turn) so that a shared machine's load falls on all of them alike.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from localqueue.errors import Empty
from localqueue.queue import PersistentQueue

__all__ = ["main", "run_cli", "run_workload"]

WORKLOADS = (
    "put", "put_many", "get_ack", "roundtrip", "mp", "cli", "sql_put", "sql_get_ack",
    "sql_roundtrip", "exec_parallel", "exec_true_parallel", "put_key", "get_ack_prio",
    "cli_keys", "get_ack_keep", "roundtrip_keep", "settle", "settle_keep", "limits",
)  # fmt: skip
EXEC_WORKLOADS = ("cli", "exec_parallel", "exec_true_parallel", "cli_keys", "limits")  # apart


def _payload(i: int) -> dict[str, Any]:
    return {"id": i, "to": "user@example.com", "pad": "x" * 100}


def _put(q: PersistentQueue, n: int, batch: int) -> float:
    started = time.perf_counter()
    for i in range(n):
        q.put(_payload(i))
    return time.perf_counter() - started


def _put_many(q: PersistentQueue, n: int, batch: int) -> float:
    started = time.perf_counter()
    for first in range(0, n, batch):
        q.put_many([_payload(i) for i in range(first, min(first + batch, n))])
    return time.perf_counter() - started


def _get_ack(q: PersistentQueue, n: int, batch: int) -> float:
    for first in range(0, n, batch):  # untimed preload
        q.put_many([_payload(i) for i in range(first, min(first + batch, n))])
    started = time.perf_counter()
    for _ in range(n):
        q.ack(q.get_message(block=False))
    return time.perf_counter() - started


def _settle(q: PersistentQueue, n: int, batch: int) -> float:
    """A worker's steps, as ``queue process`` (or ``exec -j 1``) takes them: each commit
    settles the last message (acked, with its duration, exit code and output: a record
    while the queue keeps a history) and leases the next."""
    from localqueue.outcome import Outcome

    for first in range(0, n, batch):  # untimed preload
        q.put_many([_payload(i) for i in range(first, min(first + batch, n))])
    output = {"stdout": "sent\n", "stdout_bytes": 5, "stderr": "", "stderr_bytes": 0}
    started = time.perf_counter()
    _, held = q.settle_many([], lease=1)
    while held:
        done = Outcome(held[0], "acked", duration=0.001, exit_code=0, output=output)
        _, held = q.settle_many([done], lease=1)
    return time.perf_counter() - started


def _put_key(q: PersistentQueue, n: int, batch: int) -> float:
    started = time.perf_counter()
    for i in range(n):
        q.put(_payload(i), key=f"key-{i}")
    return time.perf_counter() - started


def _get_ack_prio(q: PersistentQueue, n: int, batch: int) -> float:
    for level in range(10):  # untimed preload: message i at priority i % 10
        ids = list(range(level, n, 10))
        for first in range(0, len(ids), batch):
            q.put_many([_payload(i) for i in ids[first : first + batch]], priority=level)
    started = time.perf_counter()
    for _ in range(n):
        q.ack(q.get_message(block=False))
    return time.perf_counter() - started


def _roundtrip(q: PersistentQueue, n: int, batch: int) -> float:
    started = time.perf_counter()
    for i in range(n):
        q.put(_payload(i))
        q.ack(q.get_message(block=False))
    return time.perf_counter() - started


def _mp_producer(path: str, durability: str, first: int, count: int, start: Any) -> None:
    queue = PersistentQueue("bench", path, durability=durability)  # type: ignore[arg-type]
    start.wait()
    for i in range(first, first + count):
        queue.put(_payload(i))
    queue.close()


def _mp_consumer(path: str, durability: str, start: Any, produced: Any, out: Any) -> None:
    queue = PersistentQueue("bench", path, durability=durability)  # type: ignore[arg-type]
    seen: list[int] = []
    start.wait()
    finished = time.monotonic()
    while True:
        try:
            message = queue.get_message(block=False)
        except Empty:
            if produced.is_set() and queue.qsize() == 0:
                break
            time.sleep(0.0005)
            continue
        queue.ack(message)
        seen.append(message.value["id"])
        finished = time.monotonic()  # system-wide clock: comparable across processes
    queue.close()
    out.put((seen, finished))


def _mp(path: str, n: int, durability: str) -> float:
    """2 producers + 2 consumers (spawned processes); raises if a message is lost or
    acked twice."""
    context = multiprocessing.get_context("spawn")
    start, produced, out = context.Barrier(5), context.Event(), context.Queue()
    half = n // 2
    producers = [
        context.Process(target=_mp_producer, args=(path, durability, 0, half, start)),
        context.Process(target=_mp_producer, args=(path, durability, half, n - half, start)),
    ]
    consumers = [
        context.Process(target=_mp_consumer, args=(path, durability, start, produced, out))
        for _ in range(2)
    ]
    for process in producers + consumers:
        process.start()
    start.wait()
    began = time.monotonic()
    for process in producers:
        process.join()
    produced.set()
    results: list[tuple[list[int], float]] = [out.get() for _ in consumers]
    for process in consumers:
        process.join()
    ids = [i for seen, _ in results for i in seen]
    if len(ids) != n or len(set(ids)) != n:
        raise RuntimeError(f"mp: {n} messages put, {len(ids)} acked, {len(set(ids))} distinct")
    last_ack = max(finished for _, finished in results)
    return n / (last_ack - began)


_RUNNERS: dict[str, Callable[[PersistentQueue, int, int], float]] = {
    "put": _put,
    "put_many": _put_many,
    "get_ack": _get_ack,
    "roundtrip": _roundtrip,
    "put_key": _put_key,
    "get_ack_prio": _get_ack_prio,
    "get_ack_keep": _get_ack,
    "roundtrip_keep": _roundtrip,
    "settle": _settle,
    "settle_keep": _settle,
}


def _sql_floor(workload: str, n: int, durability: str) -> float:
    """msgs/s of the SQLite store's own statements for ``workload`` in a bare loop: what
    localqueue would reach if its Python cost nothing."""
    from localqueue.stores import _sqlite_sql as sql
    from localqueue.stores import sqlite as module

    values = [orjson.dumps(_payload(i)) for i in range(n)]
    with tempfile.TemporaryDirectory() as tmp:
        store = module.SQLiteQueueStore(Path(tmp) / "floor.sqlite3", durability=durability)  # type: ignore[arg-type]
        conn = store._file.connection()
        if workload == "sql_get_ack":
            store.put("bench", values)  # untimed preload, as for get_ack
        insert, lease, ack = sql.INSERT, sql.LEASE, sql.ACK
        relaxed = store._file.relaxed
        params = {"expires": 0.0, "by": None, "token": "t", "timeout": 30.0, "queue": "bench"}
        key: dict[str, Any] = {"queue": "bench", "token": "t"}  # fenced, as an ack is
        put, take = workload != "sql_get_ack", workload != "sql_put"
        started = time.perf_counter()
        for value in values:
            now = time.time()
            if put:
                conn.execute(insert, (1, "bench", value, now, now, now, 0))
            if take:
                params["now"], params["expires"] = now, now + 30.0
                with relaxed(conn):  # as the store leases: no fsync of its own at full
                    row = conn.execute(lease, params).fetchone()
                key["seq"], key["nonce"] = row[0], row[1]
                conn.execute(ack, key)
        elapsed = time.perf_counter() - started
        store.close()
    return n / elapsed


def run_workload(
    workload: str, n: int, *, durability: str, batch: int = 500, store_path: str | None = None
) -> float:
    """Run one workload on a fresh store and return msgs/s."""
    if workload.startswith("sql_"):
        return _sql_floor(workload, n, durability)
    with tempfile.TemporaryDirectory(dir=None) as tmp:
        path = store_path or str(Path(tmp) / "bench.sqlite3")
        queue = PersistentQueue("bench", path, durability=durability)  # type: ignore[arg-type]
        try:
            queue.purge()
            # On or off (a store_path is one store for every workload); no settings row
            # where none is needed: a queue with one pays a little more per statement.
            keep = (7 * 86400.0, None) if workload.endswith("_keep") else (None, None)
            if queue.retention() != keep:
                queue.keep(keep[0])
            if workload == "mp":
                return _mp(path, n, durability)
            elapsed = _RUNNERS[workload](queue, n, batch)
        finally:
            queue.purge()
            queue.close()
    return n / elapsed


def _median_ms(argv: list[str], runs: int, env: dict[str, str]) -> float:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(argv, capture_output=True, env=env, check=True)
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1000


def _command() -> Path:
    command = Path(sys.executable).with_name("localqueue")
    if not command.exists():
        raise RuntimeError(f"no localqueue command beside {sys.executable}")
    return command


def run_cli(lines: int, jobs: int, *, durability: str, runs: int = 20) -> dict[str, float]:
    """The command line's costs, each against its floor (see the module doc), on a SQLite
    store in a temporary directory."""
    command = _command()
    env = {**os.environ, "LOCALQUEUE_DURABILITY": durability}
    with tempfile.TemporaryDirectory() as tmp:
        store = ["--store-path", str(Path(tmp) / "cli.sqlite3")]
        add = [str(command), "queue", "add", "bench", "--value", '{"i":1}', *store]
        add_ms = _median_ms(add, runs, env)
        python_ms = _median_ms([sys.executable, "-c", "pass"], runs, env)
        data = b"".join(orjson.dumps(_payload(i)) + b"\n" for i in range(lines))
        stdin = [str(command), "queue", "add", "lines", *store]
        started = time.perf_counter()
        subprocess.run(stdin, input=data, capture_output=True, env=env, check=True)
        stdin_rate = lines / (time.perf_counter() - started)
        jobs_in = [str(command), "queue", "add", "jobs", *store]
        subprocess.run(jobs_in, input=data[: data.index(b"\n") + 1] * jobs, env=env,
                       capture_output=True, check=True)  # fmt: skip
        started = time.perf_counter()
        for _ in range(jobs):
            subprocess.run(["true"], check=True)
        spawn_ms = (time.perf_counter() - started) * 1000 / jobs
        retries = ["--retry-store-path", str(Path(tmp) / "retries.sqlite3")]
        drain = [str(command), "queue", "exec", "jobs", *store, *retries, "--", "true"]
        started = time.perf_counter()
        subprocess.run(drain, stdout=subprocess.DEVNULL, env=env, check=True)
        exec_ms = (time.perf_counter() - started) * 1000 / jobs
    return {
        "add_ms": add_ms,
        "python_ms": python_ms,
        "add_ratio": add_ms / python_ms,
        "stdin_msgs_per_s": stdin_rate,
        "exec_ms_per_msg": exec_ms,
        "spawn_ms": spawn_ms,
        "exec_ratio": exec_ms / spawn_ms,
    }


def run_cli_keys(lines: int, *, durability: str, rounds: int) -> dict[str, float]:
    """``queue add`` of ``lines`` JSON Lines on stdin with ``--key-field id`` (a fresh key
    each) against the same lines without keys: median msgs/s of each and their ratio,
    each run on a fresh store, the two kinds of run taking turns."""
    command = _command()
    env = {**os.environ, "LOCALQUEUE_DURABILITY": durability}
    data = b"".join(orjson.dumps(_payload(i)) + b"\n" for i in range(lines))
    variants = {"stdin": [], "key_field": ["--key-field", "id"]}
    samples: dict[str, list[float]] = {name: [] for name in variants}
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(rounds):
            for name, extra in variants.items():
                store = str(Path(tmp) / f"{name}-{round_}.sqlite3")
                argv = [str(command), "queue", "add", "lines", "--store-path", store, *extra]
                started = time.perf_counter()
                subprocess.run(argv, input=data, capture_output=True, env=env, check=True)
                samples[name].append(lines / (time.perf_counter() - started))
    stdin, keyed = statistics.median(samples["stdin"]), statistics.median(samples["key_field"])
    return {"stdin_msgs_per_s": stdin, "key_field_msgs_per_s": keyed, "ratio": keyed / stdin}


def _exec_drain(jobs: int, concurrency: int, job: list[str], durability: str) -> float:
    """Seconds a ``queue exec -j concurrency`` drain of ``jobs`` messages takes, from the
    worker's start to its exit, on a fresh SQLite store (the adds are not timed)."""
    command = _command()
    env = {**os.environ, "LOCALQUEUE_DURABILITY": durability}
    with tempfile.TemporaryDirectory() as tmp:
        store = ["--store-path", str(Path(tmp) / "exec.sqlite3")]
        data = b"".join(orjson.dumps({"i": i}) + b"\n" for i in range(jobs))
        subprocess.run([str(command), "queue", "add", "jobs", *store], input=data, env=env,
                       capture_output=True, check=True)  # fmt: skip
        drain = [
            str(command), "queue", "exec", "jobs", *store,
            "--retry-store-path", str(Path(tmp) / "retries.sqlite3"),
            "-j", str(concurrency), "--", *job,
        ]  # fmt: skip
        started = time.perf_counter()
        subprocess.run(drain, stdout=subprocess.DEVNULL, env=env, check=True)
        return time.perf_counter() - started


def _peer_run(argv: list[str], jobs: int) -> float:
    """Seconds ``argv`` takes to run one job per line of ``jobs`` lines on its stdin."""
    lines = b"".join(b"%d\n" % i for i in range(jobs))
    started = time.perf_counter()
    subprocess.run(argv, input=lines, stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - started


def _peers(concurrency: int, sleep: str) -> dict[str, list[str]]:
    """The shell's own ways to run the same jobs N at a time, with no queue: xargs, and
    GNU parallel where installed (each line starts one ``sleep``, given no argument)."""
    peers = {"xargs": ["xargs", "-P", str(concurrency), "-I", "{}", "sleep", sleep]}
    if shutil.which("parallel"):
        peers["parallel"] = ["parallel", "--will-cite", "-j", str(concurrency), "-N0",
                             "sleep", sleep]  # fmt: skip
    return peers


def run_exec_parallel(
    jobs: int,
    levels: list[int],
    *,
    durability: str,
    sleep: float = 0.05,
    rounds: int = 3,
) -> dict[str, Any]:
    """``exec_parallel`` (see the module doc): medians of ``rounds`` interleaved rounds."""
    job = ["sleep", f"{sleep:g}"]
    samples: dict[int, dict[str, list[float]]] = {n: {} for n in levels}
    for _ in range(rounds):
        for n in levels:
            cell = samples[n]
            cell.setdefault("exec", []).append(_exec_drain(jobs, n, job, durability))
            for name, argv in _peers(n, job[1]).items():
                cell.setdefault(name, []).append(_peer_run(argv, jobs))
    rows: dict[str, dict[str, float]] = {}
    for n in levels:
        row: dict[str, float] = {}
        for name, seconds in samples[n].items():
            wall = statistics.median(seconds)
            row[f"{name}_s"], row[f"{name}_jobs_per_s"] = wall, jobs / wall
        for name in samples[n]:
            if name != "exec":
                row[f"exec_vs_{name}"] = row["exec_s"] / row[f"{name}_s"]
        rows[str(n)] = row
    base = rows[str(levels[0])]["exec_jobs_per_s"]
    for row in rows.values():
        row["speedup"] = row["exec_jobs_per_s"] / base  # against the first level (-j 1)
    peers = [name for name in samples[levels[0]] if name != "exec"]
    return {
        "jobs": jobs, "sleep": sleep, "rounds": rounds, "peers": peers, "by_concurrency": rows,
    }  # fmt: skip


def run_exec_true_parallel(
    jobs: int, *, durability: str, concurrency: int = 4, rounds: int = 3
) -> dict[str, float]:
    """``exec_true_parallel`` (see the module doc): medians of interleaved rounds."""
    one: list[float] = []
    many: list[float] = []
    for _ in range(rounds):
        one.append(_exec_drain(jobs, 1, ["true"], durability))
        many.append(_exec_drain(jobs, concurrency, ["true"], durability))
    rate_one, rate_many = jobs / statistics.median(one), jobs / statistics.median(many)
    return {
        "jobs": jobs,
        "concurrency": concurrency,
        "j1_jobs_per_s": rate_one,
        "jN_jobs_per_s": rate_many,
        "j1_ms_per_job": 1000 / rate_one,
        "jN_ms_per_job": 1000 / rate_many,
        "ratio": rate_many / rate_one,
    }


def _limited_drain(
    jobs: int, limit: list[str], job: str, durability: str, workers: int = 4, slots: int = 4
) -> tuple[float, list[tuple[str, float]]]:
    """Seconds ``workers`` ``queue exec -j slots`` processes take to drain ``jobs``
    messages of a queue limited by ``limit`` (``queue limit`` options), and the jobs'
    log: ``job`` (a shell command) appends ``start|end <time>`` lines to ``$LOG``."""
    command = str(_command())
    env = {**os.environ, "LOCALQUEUE_DURABILITY": durability}
    with tempfile.TemporaryDirectory() as tmp:
        env["LOG"] = str(Path(tmp) / "log")
        store = ["--store-path", str(Path(tmp) / "limits.sqlite3")]
        data = b"".join(b"%d\n" % i for i in range(jobs))
        subprocess.run([command, "queue", "add", "jobs", "-q", *store], input=data, env=env,
                       check=True)  # fmt: skip
        subprocess.run([command, "queue", "limit", "jobs", *limit, *store], env=env,
                       stdout=subprocess.DEVNULL, check=True)  # fmt: skip
        drain = [command, "queue", "exec", "jobs", *store, "-j", str(slots), "--output",
                 "discard", "--", "sh", "-c", job]  # fmt: skip
        started = time.perf_counter()
        procs = [subprocess.Popen(drain, env=env, stdout=subprocess.DEVNULL)
                 for _ in range(workers)]  # fmt: skip
        for proc in procs:
            proc.wait()
        wall = time.perf_counter() - started
        log = [(kind, float(at)) for kind, at in
               (line.split() for line in Path(env["LOG"]).read_text().splitlines())]  # fmt: skip
    return wall, sorted(log, key=lambda entry: entry[1])


def run_limits(jobs: int, *, durability: str, rate: int = 100) -> dict[str, float]:
    """``limits`` (see the module doc)."""
    stamp = '"$(date +%s.%N)"'
    wall, log = _limited_drain(
        jobs, ["--rate", f"{rate}/s"], f"echo start {stamp} >> $LOG", durability
    )
    starts = [at for _, at in log]
    window = max(sum(1 for t in starts[i:] if t < s + 1.0) for i, s in enumerate(starts))
    ideal = jobs / rate
    _, spans = _limited_drain(
        200,
        ["--max-inflight", "3"],
        f"echo start {stamp} >> $LOG; sleep 0.02; echo end {stamp} >> $LOG",
        durability,
    )
    running = peak = 0
    for kind, _ in spans:
        running += 1 if kind == "start" else -1
        peak = max(peak, running)
    return {
        "jobs": jobs,
        "rate": rate,
        "rate_wall_s": wall,
        "rate_ideal_s": ideal,
        "rate_wall_ratio": wall / ideal,
        "most_starts_in_1s": window,
        "max_inflight": 3,
        "most_running": peak,
    }


def _limits_line(figures: dict[str, float]) -> str:
    return (
        f"--rate {figures['rate']:.0f}/s, 4 workers x -j 4, {figures['jobs']:.0f} jobs:"
        f" drain {figures['rate_wall_s']:.2f} s ({figures['rate_wall_ratio']:.3f}x the ideal"
        f" {figures['rate_ideal_s']:.0f} s), most starts in any 1 s"
        f" {figures['most_starts_in_1s']:.0f}; --max-inflight 3, 4 workers x -j 4, 200 jobs"
        f" of 20 ms: most running at once {figures['most_running']:.0f}"
    )


def main(argv: list[str] | None = None) -> int:
    doc = (__doc__ or "").replace("``", "")
    parser = argparse.ArgumentParser(
        prog="python -m localqueue.bench",
        description=doc.split("\n\n", 1)[0],
        epilog=doc.split("\n\n", 1)[-1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-n", type=int, default=5000, help="messages per run (default 5000)")
    parser.add_argument("--rounds", type=int, default=3, help="runs per cell; median shown")
    parser.add_argument("--batch-size", type=int, default=500, help="values per put_many")
    parser.add_argument(
        "--durability",
        choices=["full", "normal", "both"],
        default="both",
        help="SQLite durability to measure (default: both)",
    )
    parser.add_argument(
        "--workloads",
        default=",".join(WORKLOADS),
        help=f"comma-separated subset of {','.join(WORKLOADS)} (default: all)",
    )
    parser.add_argument(
        "--cli-lines", type=int, default=20000, help="JSON lines for cli's stdin (default 20000)"
    )
    parser.add_argument(
        "--cli-jobs", type=int, default=1000, help="messages cli's exec drains (default 1000)"
    )
    parser.add_argument(
        "--exec-jobs", type=int, default=1000, help="messages exec_parallel drains (default 1000)"
    )
    parser.add_argument(
        "--exec-sleep", type=float, default=0.05, help="seconds each exec_parallel job sleeps"
    )
    parser.add_argument(
        "--exec-concurrency",
        default="1,4,8,16",
        help="comma-separated -j levels of exec_parallel, the first the base (default 1,4,8,16)",
    )
    parser.add_argument(
        "--exec-true-jobs",
        type=int,
        default=2000,
        help="messages exec_true_parallel drains (default 2000)",
    )
    parser.add_argument(
        "--store-path",
        help="measure this store (e.g. postgresql://...; cli and sql_* always use a SQLite file)",
    )
    parser.add_argument(
        "--limit-jobs", type=int, default=2000, help="messages the limits rate drain runs"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead")
    args = parser.parse_args(argv)
    levels = ["full", "normal"] if args.durability == "both" else [args.durability]
    workloads = [w for w in args.workloads.split(",") if w]
    unknown = set(workloads) - set(WORKLOADS)
    if unknown:
        parser.error(f"unknown workloads: {', '.join(sorted(unknown))}")
    try:
        concurrency = [int(n) for n in args.exec_concurrency.split(",") if n]
    except ValueError:
        concurrency = []
    if not concurrency or min(concurrency) < 1:
        parser.error(f"--exec-concurrency wants numbers >= 1, got {args.exec_concurrency!r}")
    results: dict[str, dict[str, float]] = {}
    cli: dict[str, dict[str, float]] = {}
    parallel: dict[str, dict[str, Any]] = {}
    true_parallel: dict[str, dict[str, float]] = {}
    cli_keys: dict[str, dict[str, float]] = {}
    limits: dict[str, dict[str, float]] = {}
    for level in levels:
        for workload in workloads:
            if workload == "limits":
                limits[level] = run_limits(args.limit_jobs, durability=level)
                print(f"  {level:6} limits: {_limits_line(limits[level])}", file=sys.stderr)
                continue
            if workload == "cli_keys":
                cli_keys[level] = run_cli_keys(args.cli_lines, durability=level, rounds=args.rounds)
                print(f"  {level:6} {_keys_line(args.cli_lines, cli_keys[level])}", file=sys.stderr)
                continue
            if workload == "exec_parallel":
                parallel[level] = run_exec_parallel(
                    args.exec_jobs, concurrency, durability=level, sleep=args.exec_sleep,
                    rounds=args.rounds,
                )  # fmt: skip
                print(f"  {level:6} exec_parallel done", file=sys.stderr)
                continue
            if workload == "exec_true_parallel":
                true_parallel[level] = run_exec_true_parallel(
                    args.exec_true_jobs, durability=level, rounds=args.rounds
                )
                print(f"  {level:6} {_true_line(true_parallel[level])}", file=sys.stderr)
                continue
            if workload == "cli":
                rounds = [
                    run_cli(args.cli_lines, args.cli_jobs, durability=level)
                    for _ in range(args.rounds)
                ]
                cli[level] = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
                _show_cli(level, cli[level])
                continue
            samples = [
                run_workload(
                    workload,
                    args.n,
                    durability=level,
                    batch=args.batch_size,
                    store_path=args.store_path,
                )
                for _ in range(args.rounds)
            ]
            results.setdefault(level, {})[workload] = statistics.median(samples)
            print(
                f"  {level:6} {workload:13} {results[level][workload]:>12,.0f} msgs/s",
                file=sys.stderr,
            )
    if args.json:
        report = {
            "n": args.n,
            "rounds": args.rounds,
            "batch_size": args.batch_size,
            "msgs_per_s": results,
            "cli": cli,
            "exec_parallel": parallel,
            "exec_true_parallel": true_parallel,
            "cli_keys": cli_keys,
            "limits": limits,
        }
        sys.stdout.write(orjson.dumps(report).decode() + "\n")
        return 0
    measured = [w for w in workloads if w not in EXEC_WORKLOADS]
    if measured:
        print(f"{'workload':14}" + "".join(f"{level:>14}" for level in levels))
        for workload in measured:
            cells = "".join(f"{results[level][workload]:>14,.0f}" for level in levels)
            print(f"{workload:14}{cells}")
        store = (
            args.store_path.split("://")[0]
            if args.store_path
            else "SQLite, synchronous=FULL|NORMAL"
        )
        print(f"(msgs/s, median of {args.rounds}, n={args.n}, store: {store})")
    for level, figures in cli.items():
        print(f"cli, {level}: {_cli_line(figures)}")
    for level, report in parallel.items():
        _show_parallel(level, report)
    for level, figures in true_parallel.items():
        print(f"exec_true_parallel, {level}: {_true_line(figures)}")
    for level, figures in cli_keys.items():
        print(f"cli_keys, {level}: {_keys_line(args.cli_lines, figures)}")
    for level, figures in limits.items():
        print(f"limits, {level}: {_limits_line(figures)}")
    return 0


def _keys_line(lines: int, figures: dict[str, float]) -> str:
    return (
        f"queue add of {lines:,} lines --key-field id {figures['key_field_msgs_per_s']:,.0f}"
        f" msgs/s against {figures['stdin_msgs_per_s']:,.0f} without keys:"
        f" {figures['ratio']:.2f}x"
    )


def _show_parallel(level: str, report: dict[str, Any]) -> None:
    rows = report["by_concurrency"]
    peers = report["peers"]
    print(
        f"exec_parallel, {level}: {report['jobs']} jobs of sleep {report['sleep']:g},"
        f" median of {report['rounds']} (wall s, jobs/s)"
    )
    head = f"{'-j N':>5}{'queue exec':>20}" + "".join(f"{p:>20}{'ratio':>7}" for p in peers)
    print(head + f"{'vs -j 1':>9}")
    for n, row in rows.items():
        cells = f"{n:>5}{row['exec_s']:>9.2f}s {row['exec_jobs_per_s']:>7.0f}/s "
        for p in peers:
            cells += f"{row[f'{p}_s']:>9.2f}s {row[f'{p}_jobs_per_s']:>7.0f}/s "
            cells += f"{row[f'exec_vs_{p}']:>6.2f}"
        print(cells + f"{row['speedup']:>8.2f}x")


def _true_line(figures: dict[str, float]) -> str:
    return (
        f"queue exec -- true: -j {figures['concurrency']:.0f} {figures['jN_jobs_per_s']:,.0f}"
        f" jobs/s ({figures['jN_ms_per_job']:.2f} ms/job) against -j 1"
        f" {figures['j1_jobs_per_s']:,.0f} jobs/s ({figures['j1_ms_per_job']:.2f} ms/job):"
        f" {figures['ratio']:.2f}x"
    )


def _cli_line(figures: dict[str, float]) -> str:
    return (
        f"queue add {figures['add_ms']:.1f} ms ({figures['add_ratio']:.2f}x python -c pass"
        f" {figures['python_ms']:.1f} ms); stdin {figures['stdin_msgs_per_s']:,.0f} msgs/s;"
        f" exec -- true {figures['exec_ms_per_msg']:.2f} ms/msg ({figures['exec_ratio']:.2f}x"
        f" a bare spawn, {figures['spawn_ms']:.2f} ms)"
    )


def _show_cli(level: str, figures: dict[str, float]) -> None:
    print(f"  {level:6} cli       {_cli_line(figures)}", file=sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main())
