"""The Typer-free fast path of ``queue add`` must mean exactly what the Typer tree means."""

from __future__ import annotations

import pytest

from localqueue.cli import fastpath
from localqueue.cli.app import build_app


def typer_command(group: str, name: str):
    import typer
    from typer.main import get_command

    root = get_command(build_app())
    ctx = typer.Context(root)
    return root.get_command(ctx, group).get_command(ctx, name)


@pytest.mark.parametrize("key", list(fastpath.FAST_COMMANDS))
def test_fast_tables_match_the_typer_commands(key):
    spec = fastpath.FAST_COMMANDS[key]
    command = typer_command(*key)
    options = {}
    short = {}
    positionals = []
    for param in command.params:
        if param.param_type_name == "argument":
            positionals.append(param.name)
            continue
        if param.name == "help":
            continue
        for opt in param.opts + param.secondary_opts:
            (options if opt.startswith("--") else short)[opt] = (param.name, param.is_flag)
    assert tuple(positionals) == spec.positionals
    table = {opt: (dest, conv is None) for opt, (dest, conv) in spec.options.items()}
    assert options == {opt: entry for opt, entry in table.items() if opt.startswith("--")}
    # a short option in the table means what Typer's does (the others go to Typer)
    assert {opt: entry for opt, entry in table.items() if not opt.startswith("--")}.items() <= (
        short.items()
    )


CASES = [
    ("add", ["q", "--value", "{}"]),
    ("add", ["q", "--value={}", "--raw", "--delay", "1.5"]),
    ("add", ["--store-path", "x.db", "q", "--durability", "normal"]),
    ("add", ["q", "--value", "1", "--value", "2"]),
    ("add", ["--", "q"]),
    ("add", ["q", "--delay=2"]),
    ("add", ["q", "-q", "--value", "1"]),
    ("add", ["q", "--ids", "--value", "1"]),
    ("add", ["q", "--strict", "--value", "1"]),
    ("add", ["q", "--key", "k", "--on-conflict", "replace", "--value", "1"]),
    ("add", ["q", "--key-field=a.b", "--priority", "3", "--at", "@2000000000"]),
    ("add", ["q", "--priority=-2", "--at=2030-01-01T00:00:00Z"]),
    ("pop", ["q", "--strict"]),
    ("size", ["q", "--store-path=s.db"]),
    ("inspect", ["q", "1-abc"]),
    ("pop", ["q", "--block", "--timeout", "3", "--worker-id", "w", "--lease-timeout", "9"]),
    ("ack", ["q", "1-abc", "--lease-token", "t"]),
    ("release", ["q", "1-abc", "--delay", "5", "--lease-token=t"]),
    ("wait", ["q", "--timeout", "0.5"]),
]


@pytest.mark.parametrize(("command", "args"), CASES)
def test_fast_parse_agrees_with_typer(command, args):
    spec = fastpath.FAST_COMMANDS[("queue", command)]
    fast = fastpath.parse(spec, args)
    assert fast is not None
    click_command = typer_command("queue", command)
    ctx = click_command.make_context(command, list(args))
    defaults = {param.name: param.default for param in click_command.params}
    # click holds a variadic argument as a tuple; Typer hands the function a list
    params = {k: list(v) if isinstance(v, tuple) else v for k, v in ctx.params.items()}
    slow = {k: v for k, v in params.items() if v != defaults[k]}
    assert {k: v for k, v in fast.items() if v != defaults[k]} == slow
    assert set(fast) <= set(params)


def test_fast_commands_run_functions_take_the_parsed_names():
    import importlib
    import inspect

    for spec in fastpath.FAST_COMMANDS.values():
        params = inspect.signature(importlib.import_module(spec.module).run).parameters
        names = set(spec.positionals) | {dest for dest, _ in spec.options.values()}
        assert names <= set(params), spec.module


def test_the_long_running_workers_are_parsed_by_typer():
    assert ("queue", "exec") not in fastpath.FAST_COMMANDS
    assert ("queue", "process") not in fastpath.FAST_COMMANDS


@pytest.mark.parametrize(
    "args",
    [
        ["q", "--help"],
        ["q", "-h"],
        ["q", "--bogus"],
        ["q", "--delay", "soon"],
        ["q", "--raw=yes"],
        ["q", "--value"],
        ["q", "--value", "--raw"],
        [],
        ["a", "b"],
        ["q", "--value", "-1"],
    ],
)
def test_anything_unusual_goes_to_typer(args):
    assert fastpath.parse(fastpath.FAST_COMMANDS[("queue", "add")], args) is None
