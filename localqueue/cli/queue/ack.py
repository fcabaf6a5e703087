"""``localqueue queue ack``: settle a leased message for good."""

TYPE_CHECKING = False  # typing costs start-up time on the fast path

if TYPE_CHECKING:
    import typer

HELP = """Acknowledge (delete) an inflight message. With --lease-token, only the holder of
that lease may: a stale token exits 4 and changes nothing."""


def run(
    name: str,
    message_id: str,
    lease_token: str | None = None,
    store_path: str | None = None,
    durability: str | None = None,
    strict: bool = False,
) -> None:
    from localqueue.cli.common import emit, open_queue, settings

    with open_queue(
        name, settings(strict=strict or None, store_path=store_path, durability=durability)
    ) as queue:
        queue.ack(message_id, lease_token=lease_token)
    emit({"id": message_id, "queue": name, "status": "acked"})


def register(group: "typer.Typer") -> None:
    from typing import Annotated

    from localqueue.cli import options

    @group.command("ack", help=HELP)
    def ack(
        name: Annotated[str, options.queue_name()],
        message_id: Annotated[str, options.message_id()],
        lease_token: Annotated[str | None, options.lease_token()] = None,
        store_path: Annotated[str | None, options.store_path()] = None,
        durability: Annotated[str | None, options.durability()] = None,
        strict: Annotated[bool, options.strict()] = False,
    ) -> None:
        run(name, message_id, lease_token, store_path, durability, strict=strict)
