"""How ``--help`` reads: usage lines without braces, group listings with whole summaries,
and each command's examples (``localqueue.cli.examples``) at the end.

:func:`finish` is called by ``app.build_app`` on the finished Typer tree: every command and
group gets the :class:`Command` or :class:`Group` class below (Typer's own, with three
methods replaced), its examples as the epilog, and its summary as the short help. The man
pages (``scripts/gen_man.py``) use :func:`summary` and :func:`argument_metavar` too, so
``--help`` and ``man`` say the same thing.
"""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperArgument, TyperCommand, TyperGroup
from typer.models import DefaultPlaceholder

from localqueue.cli import examples

__all__ = ["Command", "Group", "argument_metavar", "finish", "summary"]


def summary(help_text: str) -> str:
    """A command's one-line summary: the first sentence of its help, up to a colon. Never
    cut short (Click's own short help ends in "..." where the terminal is narrow)."""
    first = " ".join(help_text.split("\n\n")[0].split())
    for stop in (". ", ": "):
        first = first.split(stop)[0]
    return first.rstrip(".")


def argument_metavar(param: Any, ctx: Any) -> str:
    """An argument as the usage line shows it: ``NAME``, ``[NAME]`` when optional, or
    ``-- CMD [ARGS...]`` (Typer wraps required ones in braces, which read as a choice)."""
    metavar = str(param.make_metavar(ctx))
    if not param.required and not metavar.startswith("["):
        metavar = f"[{metavar}]"
    return metavar


class _Help:
    """What :class:`Command` and :class:`Group` change in Click's help. (``ctx`` and
    ``formatter`` are Click's Context and HelpFormatter: Typer exports neither type, so
    they are typed ``Any``.)"""

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        command: Any = self
        pieces = [command.options_metavar] if command.options_metavar else []
        for param in command.get_params(ctx):
            if isinstance(param, TyperArgument):
                pieces.append(argument_metavar(param, ctx))
            else:
                pieces.extend(param.get_usage_pieces(ctx))
        if isinstance(self, TyperGroup):
            pieces.append(self.subcommand_metavar)
        return pieces

    def format_epilog(self, ctx: Any, formatter: Any) -> None:
        """The examples, as written (Click would re-wrap them as prose)."""
        epilog: str | None = getattr(self, "epilog", None)
        if not epilog:
            return
        with formatter.section("Examples"):
            for line in epilog.splitlines():
                formatter.write(f"{'':>{formatter.current_indent}}{line}\n" if line else "\n")


class Command(_Help, TyperCommand):
    """A command whose ``--help`` reads as this module says."""


class Group(_Help, TyperGroup):
    """A group whose ``--help`` reads as this module says."""


def _value(value: Any) -> Any:
    return value.value if isinstance(value, DefaultPlaceholder) else value


def finish(app: typer.Typer, path: str = "") -> None:
    """Give every command and group under ``app`` (the command at ``path``) its help class,
    its examples and its summary."""
    for info in app.registered_commands:
        name = info.name or typer.main.get_command_name(info.callback.__name__)  # type: ignore[union-attr]
        below = f"{path} {name}".strip()
        if info.cls in (None, TyperCommand):  # Typer's default: ours instead
            info.cls = Command
        info.epilog = info.epilog or examples.epilog(below)
        if info.short_help is None and info.help:
            info.short_help = summary(info.help)
    for group in app.registered_groups:
        sub = group.typer_instance
        assert sub is not None
        name = _value(group.name) or _value(sub.info.name)
        below = f"{path} {name}".strip()
        help_text = _value(group.help) or _value(sub.info.help)
        if _value(group.cls) in (None, TyperGroup):
            group.cls = Group
        group.epilog = _value(group.epilog) or examples.epilog(below)
        if _value(group.short_help) is None and help_text:
            group.short_help = summary(help_text)
        finish(sub, below)
