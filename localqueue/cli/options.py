"""Typer option factories shared by commands (imported only on the Typer path)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from localqueue import config

__all__ = [
    "Backoff",
    "Block",
    "Concurrency",
    "Durability",
    "Forever",
    "IdleSleep",
    "LeaseTimeout",
    "MaxDelay",
    "MaxJobs",
    "MaxTries",
    "NoDeadLetter",
    "ReleaseDelay",
    "RetryStorePath",
    "StorePath",
    "To",
    "WorkerId",
    "delay",
    "durability",
    "interval",
    "lease_timeout",
    "lease_token",
    "message_id",
    "queue_name",
    "retry_store_path",
    "store_path",
    "strict",
    "worker_id",
]


def _env_help(key: str) -> str:
    setting = config.SETTINGS[key]
    return f"{setting.help[0].upper()}{setting.help[1:]}. [env: {setting.env}; config: {key}]"


def queue_name(help: str = "Queue name: 1-128 characters of A-Z a-z 0-9 . _ -") -> Any:
    return typer.Argument(metavar="NAME", help=help, show_default=False)


def store_path() -> Any:
    return typer.Option(
        "--store-path",
        "-s",
        metavar="PATH",
        help=_env_help("store_path") + " [default: ./localqueue_queue.sqlite3]",
        show_default=False,
    )


def retry_store_path() -> Any:
    return typer.Option(
        "--retry-store-path",
        metavar="PATH",
        help=_env_help("retry_store_path")
        + " [default: kept with the queue store: localqueue_retries.sqlite3 in a SQLite"
        " store's directory; an LMDB or PostgreSQL store itself]",
        show_default=False,
    )


def durability() -> Any:
    return typer.Option(
        "--durability",
        metavar="full|normal",
        help=_env_help("durability") + " [default: full]",
        show_default=False,
    )


def lease_timeout() -> Any:
    return typer.Option(
        "--lease-timeout",
        metavar="SECONDS",
        help=_env_help("lease_timeout") + " [default: 30]",
        show_default=False,
    )


def message_id() -> Any:
    return typer.Argument(metavar="ID", help="Message id (as printed by add/pop).")


def lease_token() -> Any:
    return typer.Option(
        "--lease-token",
        metavar="TOKEN",
        help="Fencing: act only if this is still the message's current lease token.",
        show_default=False,
    )


def delay() -> Any:
    return typer.Option(
        "--delay", metavar="SECONDS", help="Deliver again no sooner than this from now."
    )


def worker_id() -> Any:
    return typer.Option(
        "--worker-id",
        metavar="ID",
        help="Recorded as leased_by on the messages this command leases.",
        show_default=False,
    )


def interval() -> Any:
    return typer.Option(
        "--interval",
        metavar="SECONDS",
        help="With --watch (needs it), seconds between two looks. [default: 1]",
        show_default=False,
    )


# -- the worker options shared by `queue process` and `queue exec` ----------------------

To = Annotated[
    str | None,
    typer.Option(
        "--to",
        metavar="QUEUE",
        help="Put what a job hands on (each JSON line a command prints; a function's"
        " return value) on QUEUE, in the same transaction as the ack.",
        show_default=False,
    ),
]
Concurrency = Annotated[
    int,
    typer.Option(
        "--concurrency",
        "-j",
        metavar="N",
        help="Run up to N jobs at once (each message still handled exactly once).",
    ),
]
MaxJobs = Annotated[
    int | None,
    typer.Option(
        "--max-jobs",
        "-n",
        metavar="N",
        help="Stop after starting N messages (counted across all -j slots).",
        show_default=False,
    ),
]
Forever = Annotated[
    bool,
    typer.Option(
        "--forever",
        help="Keep running when the queue is empty (poll every --idle-sleep seconds).",
    ),
]
Block = Annotated[
    bool,
    typer.Option(
        "--block",
        help="When the queue is empty, wait for work (reacting at once) instead of exiting.",
    ),
]
WorkerId = Annotated[str | None, worker_id()]
MaxTries = Annotated[
    int,
    typer.Option(
        "--max-tries",
        metavar="N",
        min=1,
        help="Attempts per message before it is dead-lettered (budget kept in the retry store).",
    ),
]
Backoff = Annotated[
    str,
    typer.Option(
        "--backoff",
        metavar="fixed|exponential",
        help="Retry wait: --release-delay every time (fixed), or doubling from it up to"
        " --max-delay plus up to 1 s of jitter (exponential).",
    ),
]
ReleaseDelay = Annotated[
    float,
    typer.Option(
        "--release-delay",
        metavar="SECONDS",
        help="Delay before a failed message is delivered again (exponential: the first"
        " one); 0 retries at once.",
    ),
]
MaxDelay = Annotated[
    float,
    typer.Option("--max-delay", metavar="SECONDS", help="Cap of the retry wait."),
]
NoDeadLetter = Annotated[
    bool,
    typer.Option(
        "--no-dead-letter",
        help="When the budget is spent, release the message (fresh budget) instead of "
        "dead-lettering it.",
    ),
]
IdleSleep = Annotated[
    float | None,
    typer.Option(
        "--idle-sleep",
        metavar="SECONDS",
        help="With --forever alone, pause between polls of an empty queue [default: 1].",
        show_default=False,
    ),
]
LeaseTimeout = Annotated[float | None, lease_timeout()]
StorePath = Annotated[str | None, store_path()]
RetryStorePath = Annotated[str | None, retry_store_path()]
Durability = Annotated[str | None, durability()]


def strict() -> Any:
    return typer.Option(
        "--strict",
        help=_env_help("strict") + " [default: warn]",
        show_default=False,
    )
