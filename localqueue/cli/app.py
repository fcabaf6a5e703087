"""The ``localqueue`` executable: wires the command groups and maps errors to exit codes.

``main`` is the console-script entry point. Start-up cost matters (every cron line and
shell loop pays it), so nothing heavy is imported at module level: the Typer tree is built
in :func:`build_app` only when needed, and ``queue add`` -- the command people call in
loops -- has a fast path (:mod:`localqueue.cli.fastpath`) that parses its simple option
set without importing Typer at all. Anything the fast path does not fully understand
(``--help``, an unknown option, a malformed number...) goes to Typer, so the two never
disagree about what a command line means.
"""

from __future__ import annotations

import os
import sys

from localqueue.cli import exit_codes

TYPE_CHECKING = False  # typing costs start-up time; mypy still reads these imports
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any, NoReturn

    import typer

__all__ = ["PROG", "build_app", "click_errors", "main"]

PROG = "localqueue"
HELP = """A durable local job queue for the shell: enqueue JSON, lease, ack, retry, dead-letter.

stdout carries only data (one JSON value per line); diagnostics go to stderr.
Exit status: 0 ok, 1 runtime error (no such store...), 2 usage error, 3 nothing to pop
(or --timeout elapsed), 4 unknown message id / wrong state / stale lease token (with
--strict: unknown queue), 5 a drain dead-lettered jobs, 6 a drain released failed jobs,
7 committed but output lost, 65 invalid input (nothing written), 75 store busy (try
again), 130 interrupted."""


def version_line() -> str:
    """``localqueue --version``: the release and the store schema version it writes (a
    store file with a newer one is refused, an older one migrated)."""
    from localqueue import __version__
    from localqueue.stores import _pg_sql, _sqlite_sql, lmdb

    schemas = f"SQLite {_sqlite_sql.SCHEMA_VERSION}, LMDB {lmdb.SCHEMA.version}"
    return f"{PROG} {__version__} (store schema: {schemas}, PostgreSQL {_pg_sql.SCHEMA_VERSION})"


def build_app() -> typer.Typer:
    """The full Typer command tree (man pages and completions are generated from it)."""
    import typer

    from localqueue.cli import completion, examples, help, man
    from localqueue.cli import config as config_group
    from localqueue.cli import queue as queue_group
    from localqueue.cli import store as store_group

    app = typer.Typer(
        name=PROG,
        help=HELP,
        cls=help.Group,
        epilog=examples.epilog(""),
        no_args_is_help=True,
        add_completion=False,
        rich_markup_mode=None,
        pretty_exceptions_enable=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    app.add_typer(queue_group.build(), name="queue")
    app.add_typer(config_group.build(), name="config")
    app.add_typer(store_group.build(), name="store")
    completion.register(app)
    man.register(app)

    def show_version(value: bool) -> None:
        if value:
            sys.stdout.write(version_line() + "\n")
            raise typer.Exit(0)

    @app.callback()
    def root(
        version: bool = typer.Option(
            False,
            "--version",
            help="Print the version (and the store schema version it writes) and exit.",
            is_eager=True,
            callback=show_version,
        ),
    ) -> None:
        """A durable local job queue for the shell."""

    help.finish(app)
    return app


def click_errors() -> tuple[type[Exception], type[Exception]]:
    """Click's ``ClickException`` and ``UsageError``. Typer exports one Click exception,
    ``typer.BadParameter``; these are its bases (Typer vendors Click from 0.26 on, so no
    ``import click`` reaches the classes Typer raises)."""
    import typer

    bases = {cls.__name__: cls for cls in typer.BadParameter.__mro__}
    return bases["ClickException"], bases["UsageError"]


def _run_typer(args: list[str]) -> int:
    import typer
    from typer.main import get_command

    click_exception, usage_error = click_errors()
    command = get_command(build_app())
    try:
        result = command.main(args, prog_name=PROG, standalone_mode=False)
    except usage_error as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # no_args_is_help: the help, as is
            sys.stderr.write(exc.format_message() + "\n")  # type: ignore[attr-defined]
            return exit_codes.USAGE
        exit_codes.error(exc.format_message())  # type: ignore[attr-defined]
        context: Any = exc.ctx  # type: ignore[attr-defined]
        if context is not None:
            sys.stderr.write(
                f"{context.get_usage()}\nTry '{context.command_path} --help' for help.\n"
            )
        return exit_codes.USAGE
    except click_exception as exc:
        exit_codes.error(exc.format_message())  # type: ignore[attr-defined]
        code: int = exc.exit_code  # type: ignore[attr-defined]
        return code
    except typer.Abort:
        return exit_codes.INTERRUPTED
    return result if isinstance(result, int) else exit_codes.OK


def silence_stdout() -> None:
    """stdout's reader went away (``| head -1``): point fd 1 at /dev/null so the final
    flush at exit cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def _code_for(exc: BaseException) -> int:
    if isinstance(exc, SystemExit):
        code = exc.code
        if code is None or isinstance(code, int):
            return code or 0
        sys.stderr.write(f"{code}\n")
        return exit_codes.ERROR
    if isinstance(exc, BrokenPipeError):
        silence_stdout()
        return exit_codes.ERROR
    if isinstance(exc, KeyboardInterrupt):
        return exit_codes.INTERRUPTED
    if os.environ.get("LOCALQUEUE_DEBUG"):
        import traceback

        traceback.print_exception(exc)
    return exit_codes.report(exc)


def run(args: Sequence[str]) -> int:
    """Run one command line (without the program name) and return its exit status."""
    return _run(list(args))[0]


def _run(args: list[str], *, then_exit: bool = False) -> tuple[int, bool]:
    """The exit status, and whether the command ran on the fast path (only our code).
    ``then_exit``: the process ends after this command (the console script)."""
    from localqueue.cli import fastpath

    fast = None
    try:
        fast = fastpath.prepare(args, then_exit=then_exit)
        if fast is not None:
            fast()
            code = 0
        else:
            code = _run_typer(args)
    except BaseException as exc:
        code = _code_for(exc)
    try:
        if sys.stdout is not None:
            sys.stdout.flush()
    except BrokenPipeError:
        silence_stdout()
    except (OSError, ValueError) as exc:  # output that never arrived fails the command
        if not code:
            code = exit_codes.report(exit_codes.CliError(f"cannot write to stdout: {exc}"))
    return code, fast is not None


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Console-script entry point."""
    instruction = os.environ.get("_LOCALQUEUE_COMPLETE")
    if instruction:  # shell completion: answered without Typer (see cli/complete.py)
        from localqueue.cli import complete

        code = complete.respond(instruction)
        if code is not None:
            sys.exit(code)
    code, fast = _run(list(sys.argv[1:] if argv is None else argv), then_exit=argv is None)
    if argv is None and fast:
        # A fast-path command of our own code is done: its output flushed, its store
        # closed, no thread started. Skipping the interpreter's teardown saves 3-4 ms of
        # a 25 ms `queue add`.
        import contextlib  # already loaded by the store

        with contextlib.suppress(OSError, ValueError):
            sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


def __getattr__(name: str) -> Any:  # ``localqueue.cli.app:app`` for tools that want it
    if name == "app":
        return build_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if __name__ == "__main__":
    main()
