"""Generate the shell completion files from the Typer command tree.

* ``completions/localqueue.bash``, ``completions/_localqueue`` (zsh) and
  ``completions/localqueue.fish``:
  Typer's dynamic scripts (each TAB runs ``localqueue``), as ``localqueue.cli.complete.source``
  fixes them up.
* ``localqueue/cli/completion_tree.json``: every group's subcommands and every command's
  options and positional arguments, which ``localqueue.cli.complete`` answers TABs from
  without importing Typer.

Run ``python scripts/regen.py`` (it also regenerates the man pages).
"""

from __future__ import annotations

import json
import re
from typing import Any

from localqueue import config
from localqueue.cli import complete, completion

SCRIPTS = {
    "bash": "completions/localqueue.bash",
    "zsh": "completions/_localqueue",
    "fish": "completions/localqueue.fish",
}
TREE = "localqueue/cli/completion_tree.json"
_CHOICES = re.compile(r"^[a-z]+(\|[a-z]+)+$")  # a metavar such as full|normal


def walk(command: Any, ctx: Any, path: str, tree: dict[str, Any]) -> None:
    """Add ``command`` (a Click command or group, at ``path``) and its children to ``tree``."""
    import typer
    from typer.core import TyperGroup, TyperOption

    commands: dict[str, str] = {}
    options: dict[str, dict[str, Any]] = {}
    arguments: list[str] = []
    for param in command.get_params(ctx):
        if isinstance(param, TyperOption):
            if param.hidden:
                continue
            metavar = param.metavar or ""
            choices = metavar.split("|") if _CHOICES.match(metavar) else []
            for name in sorted([*param.opts, *param.secondary_opts]):  # opts come from a set
                options[name] = {
                    "dest": param.name,  # the same for every spelling: --store-path, -s
                    "value": not param.is_flag and not param.count,
                    "help": " ".join((param.help or "").split()),
                    "choices": choices,
                }
        else:
            arguments.append(_argument_kind(path, param))
    if isinstance(command, TyperGroup):
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is None or sub.hidden:
                continue
            commands[name] = sub.get_short_help_str()
            sub_path = f"{path} {name}".strip()
            sub_ctx = typer.Context(sub, info_name=name, parent=ctx, **sub.context_settings)
            walk(sub, sub_ctx, sub_path, tree)
    tree[path] = {"commands": commands, "options": options, "arguments": arguments}
    if "setting" in arguments:  # config set KEY VALUE: the values of each key
        tree[path]["values"] = {key: list(s.choices) for key, s in config.SETTINGS.items()}


def _argument_kind(path: str, param: Any) -> str:
    """What completes an argument: queue names for ``options.queue_name()`` (metavar
    NAME), message ids for ``message_id``, setting names and values for ``config set``,
    a command line of its own after ``queue exec NAME --``, ``module:function`` for
    ``queue process``, command words for ``man``."""
    if param.metavar in ("NAME", "[NAME]") and path.startswith("queue "):
        return "queue"
    if param.name == "message_id":
        return "id"
    if param.name == "message_ids":  # variadic: every word after the queue
        return "ids"
    if path == "config set" and param.name == "key":
        return "choice:" + "|".join(config.SETTINGS)
    if path == "config set" and param.name == "value":
        return "setting"
    if path == "queue exec" and param.name == "command":
        return "command"
    if path == "queue process" and param.name == "handler":
        return "handler"
    if path == "man" and param.name == "command":
        return "man"
    if path == "completion" and param.name == "shell":
        return "choice:" + "|".join(completion.SHELLS)
    return ""


def render() -> dict[str, str]:
    """Every generated completion file: repository path -> text."""
    import typer
    from typer.main import get_command

    from localqueue.cli.app import PROG, build_app

    root = get_command(build_app())
    tree: dict[str, Any] = {}
    walk(root, typer.Context(root, info_name=PROG, **root.context_settings), "", tree)
    files = {path: complete.source(shell) for shell, path in SCRIPTS.items()}
    files[TREE] = json.dumps(dict(sorted(tree.items())), indent=1, sort_keys=False) + "\n"
    return files
