"""``localqueue queue log``: a finished job's kept output and every attempt's error."""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import typer

HELP = """Print a finished job's kept output and every attempt's error. A summary line
(see queue keep), the tail of its output (stdout and stderr, saying how much was
cut), then every attempt's error, oldest first. Exit 4 when the queue keeps no record
of that id."""


def run(name: str, message_id: str, store_path: str | None = None, strict: bool = False) -> None:
    from localqueue.cli.common import emit_raw, open_queue, settings
    from localqueue.cli.history import log_text
    from localqueue.errors import MessageNotFoundError

    with open_queue(name, settings(strict=strict or None, store_path=store_path)) as queue:
        record = queue.finished(message_id)
    if record is None:
        raise MessageNotFoundError(f"no finished message {message_id!r} kept in queue {name!r}")
    emit_raw(log_text(record).encode())


def register(group: "typer.Typer") -> None:
    from typing import Annotated

    from localqueue.cli import options

    @group.command("log", help=HELP)
    def log(
        name: Annotated[str, options.queue_name()],
        message_id: Annotated[str, options.message_id()],
        store_path: Annotated[str | None, options.store_path()] = None,
        strict: Annotated[bool, options.strict()] = False,
    ) -> None:
        run(name, message_id, store_path, strict=strict)
