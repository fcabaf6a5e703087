"""Typer-free parsing of the command lines shell loops call most (``queue add``, ``pop``,
``ack``, ``release``, ``size``, ``inspect``, ``wait``) and of the workers cron starts
(``queue exec``, ``queue process``): importing Typer and building the command tree costs
more than everything else such a command does.

A fast path accepts only what it fully understands: long options from its table (``--opt
V`` or ``--opt=V``), flags, and the expected number of positional arguments. Anything else
(``--help``, a short option, an unknown option, a bad number, a value that looks like an
option, shell completion) returns None and the Typer tree handles the command line, so
both parsers always agree. ``tests/cli/test_fastpath.py`` checks the tables against the
Typer commands.
"""

from __future__ import annotations

import importlib
import os

TYPE_CHECKING = False  # typing costs start-up time; mypy still reads these imports
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

__all__ = ["FAST_COMMANDS", "FastCommand", "parse", "ran", "run"]

#: Set once a command line is handed to a fast-path module that runs only our own code
#: (it may still fail): the process can then skip the interpreter's teardown.
ran = False


class FastCommand:
    """A command's module (which has ``run(**parsed)``), its positional parameters and its
    long options: ``--opt: (dest, convert)``, ``convert`` None for a flag. ``variadic``:
    the last positional takes the rest of them (one at least), as a list. ``own_code``:
    the command runs no code but ours, so the process may end without the interpreter's
    teardown (``queue process`` runs a user's handler, whose atexit hooks must run)."""

    __slots__ = ("module", "options", "own_code", "positionals", "variadic")

    def __init__(
        self,
        module: str,
        positionals: tuple[str, ...],
        options: dict[str, tuple[str, Callable[[str], Any] | None]],
        *,
        variadic: bool = False,
        own_code: bool = True,
    ) -> None:
        self.module, self.positionals, self.options = module, positionals, options
        self.variadic, self.own_code = variadic, own_code


_STORE: dict[str, tuple[str, Callable[[str], Any] | None]] = {
    "--store-path": ("store_path", str),
    "--durability": ("durability", str),
}

_WORKER: dict[str, tuple[str, Callable[[str], Any] | None]] = {
    "--max-jobs": ("max_jobs", int),
    "--forever": ("forever", None),
    "--block": ("block", None),
    "--worker-id": ("worker_id", str),
    "--max-tries": ("max_tries", int),
    "--backoff": ("backoff", str),
    "--release-delay": ("release_delay", float),
    "--max-delay": ("max_delay", float),
    "--no-dead-letter": ("no_dead_letter", None),
    "--idle-sleep": ("idle_sleep", float),
    "--lease-timeout": ("lease_timeout", float),
    "--retry-store-path": ("retry_store_path", str),
    **_STORE,
}

FAST_COMMANDS: dict[tuple[str, str], FastCommand] = {
    ("queue", "add"): FastCommand(
        "localqueue.cli.queue.add",
        ("name",),
        {"--value": ("value", str), "--raw": ("raw", None), "--delay": ("delay", float), **_STORE},
    ),
    ("queue", "size"): FastCommand("localqueue.cli.queue.size", ("name",), _STORE),
    ("queue", "inspect"): FastCommand(
        "localqueue.cli.queue.inspect", ("name", "message_id"), _STORE
    ),
    ("queue", "pop"): FastCommand(
        "localqueue.cli.queue.pop",
        ("name",),
        {
            "--worker-id": ("worker_id", str),
            "--block": ("block", None),
            "--timeout": ("timeout", float),
            "--lease-timeout": ("lease_timeout", float),
            **_STORE,
        },
    ),
    ("queue", "ack"): FastCommand(
        "localqueue.cli.queue.ack",
        ("name", "message_id"),
        {"--lease-token": ("lease_token", str), **_STORE},
    ),
    ("queue", "release"): FastCommand(
        "localqueue.cli.queue.release",
        ("name", "message_id"),
        {"--delay": ("delay", float), "--lease-token": ("lease_token", str), **_STORE},
    ),
    ("queue", "wait"): FastCommand(
        "localqueue.cli.queue.wait", ("name",), {"--timeout": ("timeout", float), **_STORE}
    ),
    ("queue", "exec"): FastCommand(
        "localqueue.cli.queue.exec",
        ("name", "command"),
        {"--timeout": ("timeout", float), **_WORKER},
        variadic=True,
    ),
    ("queue", "process"): FastCommand(
        "localqueue.cli.queue.process", ("name", "handler"), _WORKER, own_code=False
    ),
}


def parse(spec: FastCommand, args: list[str]) -> dict[str, Any] | None:
    """The keyword arguments for ``spec``'s ``run``, or None to let Typer decide."""
    parsed: dict[str, Any] = {}
    positionals: list[Any] = []
    index = 0
    while index < len(args):
        arg = args[index]
        index += 1
        if arg == "--":
            positionals.extend(args[index:])
            break
        if not arg.startswith("-") or arg == "-":
            positionals.append(arg)
            continue
        option, has_value, text = arg.partition("=")
        entry = spec.options.get(option)
        if entry is None:
            return None
        dest, convert = entry
        if convert is None:
            if has_value:
                return None
            parsed[dest] = True
            continue
        if not has_value:
            if index >= len(args) or args[index].startswith("-"):
                return None
            text = args[index]
            index += 1
        try:
            parsed[dest] = convert(text)
        except ValueError:
            return None
    if spec.variadic:
        fixed = len(spec.positionals) - 1
        if len(positionals) <= fixed:
            return None
        positionals[fixed:] = [positionals[fixed:]]
    if len(positionals) != len(spec.positionals):
        return None
    parsed.update(zip(spec.positionals, positionals, strict=True))
    return parsed


def run(args: list[str]) -> int | None:
    """Run ``args`` on a fast path and return 0, or None when there is none for them."""
    spec = FAST_COMMANDS.get((args[0], args[1])) if len(args) >= 2 else None
    if spec is None or "_LOCALQUEUE_COMPLETE" in os.environ:
        return None
    parsed = parse(spec, args[2:])
    if parsed is None:
        return None
    global ran
    ran = spec.own_code
    importlib.import_module(spec.module).run(**parsed)
    return 0
