"""``localqueue queue release``: give a leased message back to the queue."""

TYPE_CHECKING = False  # typing costs start-up time on the fast path

if TYPE_CHECKING:
    import typer

HELP = """Release an inflight message: deliverable again after --delay seconds. With
--lease-token, only the holder of that lease may. Prints the message."""


def run(
    name: str,
    message_id: str,
    delay: float = 0.0,
    lease_token: str | None = None,
    store_path: str | None = None,
    durability: str | None = None,
    strict: bool = False,
) -> None:
    from localqueue.cli.common import check_seconds, emit, open_queue, settings

    check_seconds("--delay", delay)
    with open_queue(
        name, settings(strict=strict or None, store_path=store_path, durability=durability)
    ) as queue:
        message = queue.release(message_id, delay=delay, lease_token=lease_token)
    emit(message.to_dict())


def register(group: "typer.Typer") -> None:
    from typing import Annotated

    from localqueue.cli import options

    @group.command("release", help=HELP)
    def release(
        name: Annotated[str, options.queue_name()],
        message_id: Annotated[str, options.message_id()],
        delay: Annotated[float, options.delay()] = 0.0,
        lease_token: Annotated[str | None, options.lease_token()] = None,
        store_path: Annotated[str | None, options.store_path()] = None,
        durability: Annotated[str | None, options.durability()] = None,
        strict: Annotated[bool, options.strict()] = False,
    ) -> None:
        run(name, message_id, delay, lease_token, store_path, durability, strict=strict)
