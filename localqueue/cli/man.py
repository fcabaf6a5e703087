"""``localqueue man``: show a command's manual page, also where ``MANPATH`` does not reach.

The pages are the shipped ones (``localqueue.cli.shipped``). With ``man`` installed the
page is shown by ``man -l`` (its pager, its formatting); without it, the roff source is
printed.
"""

import shutil
import sys
from typing import TYPE_CHECKING, Annotated

if TYPE_CHECKING:
    import typer

HELP = """Show a command's manual page. COMMAND is given as words (queue add), none for
the program's own page; the page is shown by man -l, or its roff source printed when man
is not installed. pip also installs the pages under the environment's share/man/man1:
with the environment's bin on PATH (an activated venv) or its share/man on MANPATH,
`man localqueue-queue-add` finds them too."""


def page(words: list[str]) -> str:
    """The shipped page of the command ``words``; a usage error when there is none."""
    from localqueue.cli import shipped
    from localqueue.cli.exit_codes import UsageError

    name = "-".join(["localqueue", *words])
    found = shipped.path(f"man/{name}.1")
    if found is None:
        command = " ".join(["localqueue", *words])
        raise UsageError(f"no manual page for '{command}' (try: localqueue man)")
    return found


def run(words: list[str]) -> int:
    path = page(words)
    sys.stdout.flush()
    program = shutil.which("man")
    if program is not None:
        import subprocess

        return subprocess.call([program, "-l", path])
    with open(path, "rb") as file:
        sys.stdout.buffer.write(file.read())
    return 0


def register(app: "typer.Typer") -> None:
    import typer

    @app.command("man", help=HELP)
    def man(
        command: Annotated[
            list[str] | None,
            typer.Argument(metavar="[COMMAND]...", help="A command, as words: queue add."),
        ] = None,
    ) -> None:
        code = run(command or [])
        if code:
            raise SystemExit(code)
