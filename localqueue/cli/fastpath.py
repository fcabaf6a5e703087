"""Typer-free parsing of the command lines shell loops call most (``queue add``, ``pop``,
``ack``, ``release``, ``size``, ``inspect``, ``wait``, ``history``): importing Typer and
building the command tree costs more than everything else such a command does. (The workers, ``queue
exec`` and ``queue process``, run for long: Typer parses them.)

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

__all__ = ["FAST_COMMANDS", "FastCommand", "parse", "prepare"]


class FastCommand:
    """A command's module (which has ``run(**parsed)``), its positional parameters and its
    long options: ``--opt: (dest, convert)``, ``convert`` None for a flag. A fast
    command runs no code but ours, so the process may end without the interpreter's
    teardown."""

    __slots__ = ("module", "options", "positionals")

    def __init__(
        self,
        module: str,
        positionals: tuple[str, ...],
        options: dict[str, tuple[str, Callable[[str], Any] | None]],
    ) -> None:
        self.module, self.positionals, self.options = module, positionals, options


_STORE: dict[str, tuple[str, Callable[[str], Any] | None]] = {
    "--store-path": ("store_path", str),
    "--durability": ("durability", str),
}
#: Commands on an existing queue (and queue add): a name the store never held is a
#: warning, or with --strict an error.
_STRICT: dict[str, tuple[str, Callable[[str], Any] | None]] = {"--strict": ("strict", None)}
#: Commands that only read (no --durability).
_READ: dict[str, tuple[str, Callable[[str], Any] | None]] = {
    "--store-path": ("store_path", str),
    **_STRICT,
}

FAST_COMMANDS: dict[tuple[str, str], FastCommand] = {
    ("queue", "add"): FastCommand(
        "localqueue.cli.queue.add",
        ("name",),
        {
            "--value": ("value", str),
            "--raw": ("raw", None),
            "--delay": ("delay", float),
            "--quiet": ("quiet", None),
            "-q": ("quiet", None),
            "--ids": ("ids", None),
            **_STRICT,
            "--key": ("key", str),
            "--key-field": ("key_field", str),
            "--on-conflict": ("on_conflict", str),
            "--priority": ("priority", int),
            "--at": ("at", str),
            "--group": ("group", str),
            "--group-field": ("group_field", str),
            **_STORE,
        },
    ),
    ("queue", "size"): FastCommand("localqueue.cli.queue.size", ("name",), _READ),
    ("queue", "inspect"): FastCommand(
        "localqueue.cli.queue.inspect", ("name", "message_id"), _READ
    ),
    ("queue", "pop"): FastCommand(
        "localqueue.cli.queue.pop",
        ("name",),
        {
            "--worker-id": ("worker_id", str),
            "--block": ("block", None),
            "--timeout": ("timeout", float),
            "--lease-timeout": ("lease_timeout", float),
            **_STRICT,
            **_STORE,
        },
    ),
    ("queue", "ack"): FastCommand(
        "localqueue.cli.queue.ack",
        ("name", "message_id"),
        {"--lease-token": ("lease_token", str), **_STRICT, **_STORE},
    ),
    ("queue", "release"): FastCommand(
        "localqueue.cli.queue.release",
        ("name", "message_id"),
        {
            "--delay": ("delay", float),
            "--lease-token": ("lease_token", str),
            **_STRICT,
            **_STORE,
        },
    ),
    ("queue", "history"): FastCommand(
        "localqueue.cli.queue.history",
        ("name",),
        {
            "--status": ("status", str),
            "--since": ("since", str),
            "--limit": ("limit", int),
            "-n": ("limit", int),
            "--key": ("key", str),
            **_READ,
        },
    ),
    ("queue", "wait"): FastCommand(
        "localqueue.cli.queue.wait", ("name",), {"--timeout": ("timeout", float), **_READ}
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
    if len(positionals) != len(spec.positionals):
        return None
    parsed.update(zip(spec.positionals, positionals, strict=True))
    return parsed


def prepare(args: list[str], *, then_exit: bool = False) -> Callable[[], None] | None:
    """The fast path of ``args`` as a call that runs the command, or None when there is
    none for them. That call runs only our own code (even when it raises), so the
    process may then skip the interpreter's teardown. ``then_exit``: the process ends
    after this command, so its JSON may use the codec's one-shot mode."""
    spec = FAST_COMMANDS.get((args[0], args[1])) if len(args) >= 2 else None
    if spec is None or "_LOCALQUEUE_COMPLETE" in os.environ:
        return None
    parsed = parse(spec, args[2:])
    if parsed is None:
        return None

    def run() -> None:
        from localqueue import codec

        if then_exit:
            codec.one_shot()  # a few small documents, then exit: see the codec's module doc
        importlib.import_module(spec.module).run(**parsed)

    return run
