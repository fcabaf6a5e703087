"""The Quickstart handler: ``localqueue queue process emails examples.email_worker:send_email``.

A real handler would talk to an SMTP server; this one validates the job and prints what it
would send on stderr (stdout belongs to the worker's JSON lines). Raising an exception
releases the message for another attempt; returning acks it.
"""

from __future__ import annotations

import sys
from typing import Any


def send_email(job: dict[str, Any]) -> None:
    """Send one email job: ``{"to": "user@example.com", "subject"?: ..., "body"?: ...}``."""
    to = job.get("to") if isinstance(job, dict) else None
    if not isinstance(to, str) or "@" not in to:
        raise ValueError(f"job has no valid 'to' address: {job!r}")
    subject = job.get("subject", "(no subject)")
    print(f"send_email: to={to} subject={subject}", file=sys.stderr, flush=True)
