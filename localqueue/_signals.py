"""Start helper threads that never take SIGINT/SIGTERM away from the main thread.

The kernel hands a process-directed signal to any thread that does not block it. If a
helper thread (a heartbeat, a LISTEN reader) gets SIGTERM, Python's handler is only
flagged, and a main thread asleep in a handler (``time.sleep``, a blocking read) is not
woken: a worker would ignore its second Ctrl-C until the job ends. Threads started here
inherit a mask blocking both signals, so they always reach the main thread.
"""

from __future__ import annotations

import signal
import threading

__all__ = ["start_quietly"]

_STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


def start_quietly(thread: threading.Thread) -> None:
    """``thread.start()`` with SIGINT and SIGTERM blocked in the new thread."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
    try:
        thread.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
