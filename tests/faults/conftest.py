"""Helpers for the fault suite: run localqueue in a child process, and look at a store
from a fresh process, as an operator would after a crash."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

SNAPSHOT = textwrap.dedent(
    """
    import json, sqlite3, sys
    conn = sqlite3.connect(sys.argv[1])
    check = conn.execute("PRAGMA integrity_check").fetchall()
    rows = conn.execute(
        "SELECT seq, queue, value, state, attempts, available_at, lease_token,"
        " lease_expires_at, last_error, dead_at FROM messages ORDER BY seq"
    ).fetchall()
    print(json.dumps({"integrity": [c[0] for c in check],
                      "rows": [[v.decode() if isinstance(v, bytes) else v for v in r]
                               for r in rows]}))
    """
)


def snapshot(path: Path) -> dict[str, Any]:
    """Integrity check and every row, read by a fresh process with plain sqlite3."""
    out = subprocess.run(
        [sys.executable, "-c", SNAPSHOT, str(path)], capture_output=True, text=True, check=True
    ).stdout
    result: dict[str, Any] = json.loads(out)
    return result
