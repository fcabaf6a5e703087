"""What ``queue keep``, ``queue history`` and ``queue log`` share: durations and times
as people write them, and the terminal views of history records. On the fast path of
``queue history`` (see ``localqueue.cli.fastpath``)."""

from __future__ import annotations

import time

from localqueue.cli.exit_codes import UsageError

TYPE_CHECKING = False  # on the fast path of queue history: typing costs start-up time
if TYPE_CHECKING:
    from datetime import datetime
    from typing import Any

__all__ = ["format_duration", "log_text", "parse_duration", "parse_since", "table"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(option: str, text: str) -> float:
    """``30s``, ``15m``, ``12h``, ``7d`` (a number, maybe with a fraction, and a unit)
    as seconds > 0; anything else is a usage error."""
    number, unit = text[:-1], text[-1:].lower()
    try:
        seconds = float(number) * _UNITS[unit]
    except (KeyError, ValueError):
        raise UsageError(
            f"{option} {text!r}: not a duration (a number and a unit: 30s, 15m, 12h, 7d)"
        ) from None
    if not 0 < seconds < float("inf"):
        raise UsageError(f"{option} {text!r}: a duration must be > 0")
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest exact way to write ``seconds`` as ``parse_duration`` reads it."""
    for unit in ("d", "h", "m"):
        size = _UNITS[unit]
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def parse_since(text: str) -> float:
    """``--since``: ISO 8601 with a timezone, ``@EPOCH``, or a DURATION meaning that
    long ago; as seconds since the epoch."""
    if text[:1].isdigit() and text[-1:].lower() in _UNITS and text[:-1].replace(".", "").isdigit():
        return time.time() - parse_duration("--since", text)
    from localqueue.cli.enqueue import parse_at

    try:
        when: datetime = parse_at(text)
    except UsageError as exc:
        raise UsageError(
            str(exc).replace("--at", "--since") + " (or a DURATION ago: 30s, 15m, 12h, 7d)"
        ) from None
    return when.timestamp()


def _ago(seconds: float) -> str:
    from localqueue.cli.queue.stats import ago

    return ago(seconds)


def _first_line(error: Any) -> str:
    if error is None:
        return ""
    text = error.get("message", "") if isinstance(error, dict) else str(error)
    return str(text).splitlines()[0] if text else ""


def table(records: list[dict[str, Any]]) -> str:
    """The records as an aligned table for a terminal: id, status, attempts, finished
    ("3m ago"), duration, exit code, the first line of the error."""
    now = time.time()
    header = ("id", "status", "attempts", "finished", "duration", "exit", "error")
    rows = [header]
    for r in records:
        duration = "-" if r["duration"] is None else f"{r['duration']:.2f}s"
        rows.append(
            (
                r["id"],
                r["status"],
                str(r["attempts"]),
                _ago(now - r["finished_at"]),
                duration,
                "-" if r["exit_code"] is None else str(r["exit_code"]),
                _first_line(r["error"]),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def _stream(name: str, text: str, total: int) -> str:
    cut = total - len(text.encode())
    head = f"--- {name} ({total} bytes"
    head += f"; the first {cut} not kept, the last {total - cut} below)" if cut > 0 else ")"
    return f"{head} ---\n{text}" + ("" if not text or text.endswith("\n") else "\n")


def log_text(record: dict[str, Any]) -> str:
    """A finished job as ``queue log`` shows it: a summary, its kept output (stdout and
    stderr, saying what was cut), then every attempt's error, oldest first."""
    lines = [
        f"{record['id']} ({record['queue']}): {record['status']} after"
        f" {record['attempts']} attempt{'s' if record['attempts'] != 1 else ''}",
    ]
    if record["exit_code"] is not None:
        lines.append(f"exit code: {record['exit_code']}")
    if record["duration"] is not None:
        lines.append(f"duration: {record['duration']:.3f}s")
    if record["worker"]:
        lines.append(f"worker: {record['worker']}")
    text = "\n".join(lines) + "\n"
    output = record["output"]
    if isinstance(output, dict) and "stdout_bytes" in output:
        for name in ("stdout", "stderr"):
            if output[f"{name}_bytes"]:
                text += _stream(name, output[name], output[f"{name}_bytes"])
    elif output is not None:
        from localqueue.codec import dumps_line

        text += "--- result ---\n" + dumps_line(output).decode()
    for number, error in enumerate(record["errors"], 1):
        text += f"--- error of attempt {number} ---\n"
        if isinstance(error, dict):
            text += f"{error.get('type', 'Error')}: {error.get('message', '')}\n"
            for name in ("stdout", "stderr"):
                if error.get(name):
                    text += f"{name}:\n{error[name]}" + ("" if error[name].endswith("\n") else "\n")
        else:
            text += f"{error}\n"
    return text
