"""``localqueue queue delete``: remove messages in any state."""

from typing import TYPE_CHECKING, Annotated

if TYPE_CHECKING:
    import typer

HELP = """Delete messages by id, in any state (ready, delayed, inflight, dead), all in one
transaction. Prints {"queue", "deleted": N}. Exit 4 naming the ids that are not messages
of the queue; nothing is deleted then."""


def run(
    name: str,
    message_ids: list[str],
    store_path: str | None = None,
    durability: str | None = None,
    strict: bool = False,
) -> None:
    from localqueue.cli.common import emit, open_queue, settings

    conf = settings(strict=strict or None, store_path=store_path, durability=durability)
    with open_queue(name, conf) as queue:
        deleted = queue.delete(*message_ids)
    emit({"queue": name, "deleted": deleted})


def register(group: "typer.Typer") -> None:
    import typer

    from localqueue.cli import options

    @group.command("delete", help=HELP)
    def delete(
        name: Annotated[str, options.queue_name()],
        message_ids: Annotated[
            list[str], typer.Argument(metavar="ID...", help="Messages to delete.")
        ],
        store_path: Annotated[str | None, options.store_path()] = None,
        durability: Annotated[str | None, options.durability()] = None,
        strict: Annotated[bool, options.strict()] = False,
    ) -> None:
        run(name, message_ids, store_path, durability, strict=strict)
