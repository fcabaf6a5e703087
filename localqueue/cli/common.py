"""What every command shares, without Typer: settings, opening queues, writing JSON lines.

Nothing here imports Typer, so the fast path of ``queue add`` (see ``app.main``) can use it.
"""

from __future__ import annotations

import os
import sys

from localqueue import codec, config
from localqueue.cli.exit_codes import CliError

TYPE_CHECKING = False  # typing costs start-up time; mypy still reads these imports
if TYPE_CHECKING:
    from typing import Any, TextIO

    from localqueue.queue import PersistentQueue
    from localqueue.stores.base import QueueStore

__all__ = ["emit", "emit_raw", "open_queue", "settings", "stderr_is_tty"]


def settings(**flags: Any) -> config.Settings:
    """The effective settings for these flags (None means the flag was not given)."""
    return config.resolve(flags)


def open_queue(
    name: str, conf: config.Settings, *, lease_timeout: float | None = None
) -> PersistentQueue:
    """Open queue ``name`` on the store the settings point at."""
    from localqueue.queue import PersistentQueue

    return PersistentQueue(
        name,
        conf.store_path,
        lease_timeout=conf.lease_timeout if lease_timeout is None else lease_timeout,
        durability="normal" if conf.durability == "normal" else "full",
    )


def emit(value: Any, stdout: TextIO | None = None) -> None:
    """Write ``value`` as one compact JSON line on stdout (or ``stdout``) and flush it."""
    emit_raw(codec.dumps_line(value), stdout)


def emit_raw(data: bytes, stdout: TextIO | None = None) -> None:
    """Write bytes (whole lines) on stdout (or ``stdout``) and flush them."""
    stream = sys.stdout if stdout is None else stdout
    if stream is None:  # started with stdout closed (>&-)
        raise CliError("stdout is closed: nowhere to write the output")
    out = stream.buffer
    try:
        out.write(data)
        out.flush()
    except BrokenPipeError:
        raise  # the reader left (| head): app.main ends quietly
    except OSError as exc:  # a full disk, a closed descriptor...
        raise CliError(f"cannot write to stdout: {exc.strerror or exc}") from None


def stderr_is_tty() -> bool:
    try:
        return os.isatty(sys.stderr.fileno())
    except (OSError, ValueError, AttributeError):
        return False


def color_allowed() -> bool:
    """NO_COLOR (https://no-color.org) turns colour off; so does a non-terminal stderr."""
    return not os.environ.get("NO_COLOR") and stderr_is_tty()


def check_seconds(option: str, seconds: float) -> float:
    """A usage error unless ``seconds`` is a finite number >= 0."""
    from localqueue.cli.exit_codes import UsageError

    if not 0 <= seconds < float("inf"):
        raise UsageError(f"{option} must be a number of seconds >= 0, got {seconds!r}")
    return seconds


def stdout_is_tty() -> bool:
    try:
        return os.isatty(sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        return False


def open_store(conf: config.Settings) -> QueueStore:
    """Open the store itself (for commands about every queue in it)."""
    from localqueue.stores import open_store as open_any

    if conf.store_path.startswith(("postgresql://", "postgres://", "lmdb://")):
        return open_any(conf.store_path)
    return open_any(conf.store_path, durability=conf.durability)
