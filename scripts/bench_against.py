"""Compare ``python -m localqueue.bench`` workloads of this checkout with another tree
(an older commit checked out with ``git worktree add /tmp/old <commit>``) in one run:
the same interpreter and venv, ``PYTHONPATH`` choosing the tree, the two taking turns
round after round so that a shared machine's load falls on both alike.

    python scripts/bench_against.py /tmp/old --workloads put,put_many,get_ack --rounds 7

Prints, per workload and durability, the median msgs/s of each tree and their ratio
(this checkout / the other); ``--json`` prints the same as one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def one_round(tree: Path, workloads: str, n: int, durability: str) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    argv = [sys.executable, "-m", "localqueue.bench", "--json", "--rounds", "1", "-n", str(n)]
    argv += ["--workloads", workloads, "--durability", durability]
    out = subprocess.run(argv, env=env, cwd=tree, capture_output=True, text=True, check=True)
    report: dict[str, float] = json.loads(out.stdout)["msgs_per_s"][durability]
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("other", type=Path, help="the tree to compare with")
    parser.add_argument("--workloads", default="put,put_many,get_ack")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("-n", type=int, default=2000)
    parser.add_argument("--durability", default="full,normal")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    trees = {"this": REPO, "other": args.other.resolve()}
    result: dict[str, dict[str, dict[str, float]]] = {}
    for level in args.durability.split(","):
        samples: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
        for _ in range(args.rounds):
            for name, tree in trees.items():
                samples[name].append(one_round(tree, args.workloads, args.n, level))
        for workload in args.workloads.split(","):
            this = statistics.median(s[workload] for s in samples["this"])
            other = statistics.median(s[workload] for s in samples["other"])
            result.setdefault(level, {})[workload] = {
                "this": this,
                "other": other,
                "ratio": this / other,
            }
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{'durability':10} {'workload':12} {'this':>10} {'other':>10} {'ratio':>7}")
    for level, rows in result.items():
        for workload, row in rows.items():
            print(
                f"{level:10} {workload:12} {row['this']:>10,.0f} {row['other']:>10,.0f}"
                f" {row['ratio']:>7.3f}"
            )
    print(f"(msgs/s, median of {args.rounds} interleaved rounds, n={args.n})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
