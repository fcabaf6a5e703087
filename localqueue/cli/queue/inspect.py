"""``localqueue queue inspect``: print one message, in any state."""

TYPE_CHECKING = False  # typing costs start-up time on the fast path

if TYPE_CHECKING:
    import typer

HELP = """Print one message (any state) as JSON; a finished one the queue keeps a record
of (queue keep) prints that record, with "state": "finished". Exit 4 when the id is
unknown."""


def run(name: str, message_id: str, store_path: str | None = None, strict: bool = False) -> None:
    from localqueue.cli.common import emit, open_queue, settings
    from localqueue.errors import MessageNotFoundError

    with open_queue(name, settings(strict=strict or None, store_path=store_path)) as queue:
        message = queue.inspect(message_id)
        finished = None if message is not None else queue.finished(message_id)
    if message is not None:
        emit(message.to_dict())
    elif finished is not None:
        emit(finished)
    else:
        raise MessageNotFoundError(f"no message {message_id!r} in queue {name!r}")


def register(group: "typer.Typer") -> None:
    from typing import Annotated

    from localqueue.cli import options

    @group.command("inspect", help=HELP)
    def inspect(
        name: Annotated[str, options.queue_name()],
        message_id: Annotated[str, options.message_id()],
        store_path: Annotated[str | None, options.store_path()] = None,
        strict: Annotated[bool, options.strict()] = False,
    ) -> None:
        run(name, message_id, store_path, strict=strict)
