"""``localqueue store check``: integrity check, schema version and counts; exit 1 on damage."""

from typing import TYPE_CHECKING, Annotated

if TYPE_CHECKING:
    import typer

HELP = """Run SQLite's integrity check on the store file and print one JSON object:
{"path", "ok", "integrity", "schema_version", "durability", "messages", "queues"}.
Exits 1 when the file is damaged or is not a localqueue store (the file is never modified)."""


def run(store_path: str | None = None) -> int:
    from localqueue.cli.common import emit
    from localqueue.cli.exit_codes import ERROR, OK, error
    from localqueue.cli.store import open_sqlite

    store = open_sqlite(store_path, None)
    try:
        report = store.check()
    finally:
        store.close()
    emit(report)
    if not report["ok"]:
        error(f"{report['path']}: database is malformed (integrity check failed)")
        return ERROR
    return OK


def register(group: "typer.Typer") -> None:
    from localqueue.cli import options

    @group.command("check", help=HELP)
    def check(
        store_path: Annotated[str | None, options.store_path()] = None,
    ) -> None:
        code = run(store_path)
        if code:
            raise SystemExit(code)
