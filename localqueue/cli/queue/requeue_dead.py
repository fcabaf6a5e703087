"""``localqueue queue requeue-dead``: make dead letters deliverable again."""

from typing import TYPE_CHECKING, Annotated

if TYPE_CHECKING:
    import typer

HELP = """Make a dead letter (ID) or every dead letter (--all) deliverable again after
--delay seconds. Prints the requeued message, or {"queue", "requeued": N} with --all.
Exit 4 when ID is not a dead letter of the queue, or when requeueing would take a
deduplication key that another message holds now (nothing is requeued)."""


def run(
    name: str,
    message_id: str | None = None,
    all_: bool = False,
    delay: float = 0.0,
    store_path: str | None = None,
    durability: str | None = None,
    strict: bool = False,
) -> None:
    from localqueue.cli.common import check_seconds, emit, open_queue, settings
    from localqueue.cli.exit_codes import UsageError

    if (message_id is None) == (not all_):
        raise UsageError("give either a message ID or --all")
    check_seconds("--delay", delay)
    with open_queue(
        name, settings(strict=strict or None, store_path=store_path, durability=durability)
    ) as queue:
        if message_id is None:
            emit({"queue": name, "requeued": queue.requeue_all_dead(delay)})
        else:
            emit(queue.requeue_dead(message_id, delay).to_dict())


def register(group: "typer.Typer") -> None:
    import typer

    from localqueue.cli import options

    @group.command("requeue-dead", help=HELP)
    def requeue_dead(
        name: Annotated[str, options.queue_name()],
        message_id: Annotated[
            str | None, typer.Argument(metavar="[ID]", help="Dead letter to requeue.")
        ] = None,
        all_: Annotated[bool, typer.Option("--all", help="Requeue every dead letter.")] = False,
        delay: Annotated[float, options.delay()] = 0.0,
        store_path: Annotated[str | None, options.store_path()] = None,
        durability: Annotated[str | None, options.durability()] = None,
        strict: Annotated[bool, options.strict()] = False,
    ) -> None:
        run(name, message_id, all_, delay, store_path, durability, strict=strict)
