"""Measure localqueue on this machine's disk: ``python -m localqueue.bench``.

Runs the same workloads as the side-by-side benchmark (put, put_many, get+ack,
put+get+ack) on a fresh SQLite file per run, at each durability level asked for, and
prints msgs/s (median of the rounds) as a table, or JSON with ``--json``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from localqueue.queue import PersistentQueue

__all__ = ["main", "run_workload"]

WORKLOADS = ("put", "put_many", "get_ack", "roundtrip")


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


def _roundtrip(q: PersistentQueue, n: int, batch: int) -> float:
    started = time.perf_counter()
    for i in range(n):
        q.put(_payload(i))
        q.ack(q.get_message(block=False))
    return time.perf_counter() - started


_RUNNERS: dict[str, Callable[[PersistentQueue, int, int], float]] = {
    "put": _put,
    "put_many": _put_many,
    "get_ack": _get_ack,
    "roundtrip": _roundtrip,
}


def run_workload(
    workload: str, n: int, *, durability: str, batch: int = 500, store_path: str | None = None
) -> float:
    """Run one workload on a fresh store and return msgs/s."""
    with tempfile.TemporaryDirectory(dir=None) as tmp:
        path = store_path or str(Path(tmp) / "bench.sqlite3")
        queue = PersistentQueue("bench", path, durability=durability)  # type: ignore[arg-type]
        try:
            queue.purge()
            elapsed = _RUNNERS[workload](queue, n, batch)
        finally:
            queue.purge()
            queue.close()
    return n / elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m localqueue.bench", description=__doc__.splitlines()[0]
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
        "--workloads", default=",".join(WORKLOADS), help="comma-separated subset of workloads"
    )
    parser.add_argument("--store-path", help="measure this store (e.g. postgresql://...)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead")
    args = parser.parse_args(argv)
    levels = ["full", "normal"] if args.durability == "both" else [args.durability]
    workloads = [w for w in args.workloads.split(",") if w]
    unknown = set(workloads) - set(WORKLOADS)
    if unknown:
        parser.error(f"unknown workloads: {', '.join(sorted(unknown))}")
    results: dict[str, dict[str, float]] = {}
    for level in levels:
        for workload in workloads:
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
                f"  {level:6} {workload:9} {results[level][workload]:>12,.0f} msgs/s",
                file=sys.stderr,
            )
    if args.json:
        report = {
            "n": args.n,
            "rounds": args.rounds,
            "batch_size": args.batch_size,
            "msgs_per_s": results,
        }
        sys.stdout.write(orjson.dumps(report).decode() + "\n")
        return 0
    print(f"{'workload':10}" + "".join(f"{level:>14}" for level in levels))
    for workload in workloads:
        cells = "".join(f"{results[level][workload]:>14,.0f}" for level in levels)
        print(f"{workload:10}{cells}")
    store = (
        args.store_path.split("://")[0] if args.store_path else "SQLite, synchronous=FULL|NORMAL"
    )
    print(f"(msgs/s, median of {args.rounds}, n={args.n}, store: {store})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
