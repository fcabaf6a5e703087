"""Generate the man pages in ``man/`` from the Typer command tree.

click-man cannot read Typer apps, so this walks the tree itself: ``localqueue.1``, one
page per group (``localqueue-queue.1``) and one per command (``localqueue-queue-add.1``).
Names, synopsis, description, arguments and options come from the commands; exit status,
environment and files from ``localqueue.cli.exit_codes`` and ``localqueue.config``; the
examples from ``localqueue.cli.examples`` (which also end each command's ``--help``). The
date is SOURCE_DATE_EPOCH (default ``DEFAULT_EPOCH``), so pages are byte-for-byte
reproducible.

Run ``python scripts/regen.py`` (it also regenerates the completions).
"""

from __future__ import annotations

import os
import re
import time
from typing import Any

from localqueue import __version__, config
from localqueue.cli import exit_codes
from localqueue.cli.examples import EXAMPLES
from localqueue.cli.help import argument_metavar, summary

DEFAULT_EPOCH = 1767225600  # 2026-01-01: pages do not change unless the CLI does

EXIT_STATUS = {
    exit_codes.OK: "Success. An empty queue is not an error for queue process and queue exec.",
    exit_codes.ERROR: "Runtime error: no such store (only queue add creates one), store "
    "unreadable or corrupt, disk full, handler crash...",
    exit_codes.USAGE: "Usage error: bad flags, invalid queue name, unimportable handler, "
    "missing command.",
    exit_codes.EMPTY: "Nothing to pop (the queue is empty, or --timeout elapsed).",
    exit_codes.NOT_FOUND: "Unknown message id, wrong state, or stale --lease-token; with "
    "--strict (or strict: true), a queue name the store never held.",
    exit_codes.JOBS_DEAD: "A draining queue process or queue exec dead-lettered at least one "
    "message it handled.",
    exit_codes.JOBS_RETRYING: "A draining queue process or queue exec released failed messages "
    "for a later attempt (none was dead-lettered).",
    exit_codes.OUTPUT_LOST: "queue add committed the messages but could not write its output "
    "(a full disk...): do not add them again. A reader that stops reading (| head) is exit 0.",
    exit_codes.DATA_ERROR: "Invalid input data; nothing was written (the line is named).",
    exit_codes.STORE_BUSY: "The store stayed locked past its busy timeout; try again.",
    exit_codes.INTERRUPTED: "Interrupted: a second SIGINT or SIGTERM stopped a worker "
    "mid-message (it was released).",
}

ENVIRONMENT = {
    **{
        s.env: f"{s.help[0].upper()}{s.help[1:]} (config key {s.key})."
        for s in config.SETTINGS.values()
    },
    config.CONFIG_ENV: "The config file to read, and the one config init and config set write.",
    "XDG_CONFIG_HOME": "The config file is $XDG_CONFIG_HOME/localqueue/config.yaml "
    "(~/.config/localqueue/config.yaml when unset).",
    "NO_COLOR": "When set, no colour on a terminal (https://no-color.org).",
    "LOCALQUEUE_DEBUG": "When set, an unexpected error also prints its traceback on stderr, "
    "and shell completion says there why it offers nothing from the store.",
}
EXEC_ENVIRONMENT = {
    "LOCALQUEUE_MESSAGE_ID": "Set for the command: the id of the message it handles.",
    "LOCALQUEUE_QUEUE": "Set for the command: the queue name.",
    "LOCALQUEUE_ATTEMPT": "Set for the command: the message's attempts (1 on first delivery).",
}

FILES = {
    "./localqueue_queue.sqlite3": "The default queue store (SQLite, WAL mode, created mode 0600).",
    "localqueue_retries.sqlite3": "The default retry store of queue process and queue exec,"
    " in the directory of a SQLite queue store (an LMDB or PostgreSQL store keeps the retry"
    " budgets itself).",
    "$XDG_CONFIG_HOME/localqueue/config.yaml": "The config file (YAML; read only when it exists).",
}


def escape(text: str) -> str:
    """Text for a roff line: backslashes and hyphens escaped, no control character first."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\\&" + text if text.startswith((".", "'")) else text


def paragraphs(text: str) -> list[str]:
    """Help text as paragraphs (blank lines separate them; line breaks inside do not,
    except in a paragraph that starts with Click's no-rewrap marker ``\\b``)."""
    return [
        block.strip() if block.startswith("\b") else " ".join(block.split())
        for block in text.split("\n\n")
        if block.strip()
    ]


def page_name(path: str) -> str:
    return "-".join(["localqueue", *path.split()])


def _date() -> str:
    epoch = int(os.environ.get("SOURCE_DATE_EPOCH", DEFAULT_EPOCH))
    return time.strftime("%Y-%m-%d", time.gmtime(epoch))


def _definitions(title: str, items: dict[Any, str], tag: str = "B") -> list[str]:
    lines = [f".SH {title}"]
    for key, text in items.items():
        lines += [".TP", f".{tag} {escape(str(key))}", escape(text)]
    return lines


_RECORD = re.compile(r"^(-[\w-]+(?:, -[\w-]+)*)(?: (.+))?$")


def _option_tag(param: Any, ctx: Any) -> str:
    """``-h, --help`` in bold, a metavar in italics. From the help record, whose order is
    stable (the order of ``param.opts`` is not: Click keeps help names in a set)."""
    record = param.get_help_record(ctx)[0]
    match = _RECORD.match(record)
    if match is None:
        return f"\\fB{escape(record)}\\fR"
    tag = ", ".join(f"\\fB{escape(name)}\\fR" for name in match[1].split(", "))
    return f"{tag} \\fI{escape(match[2])}\\fR" if match[2] else tag


def page(path: str, command: Any, ctx: Any, children: list[tuple[str, str]]) -> str:
    """The man page of ``command`` at ``path`` ("" for the program itself)."""
    from typer.core import TyperOption

    name = page_name(path)
    name_line = summary(command.help or "")
    lines = [
        '.\\" Generated by scripts/gen_man.py from the localqueue CLI; do not edit.',
        f'.TH "{escape(name.upper())}" "1" "{_date()}" "localqueue {__version__}" '
        '"localqueue manual"',
        ".nh",
        ".ad l",
        ".SH NAME",
        f"{escape(name)} \\- {escape(name_line)}",
        ".SH SYNOPSIS",
        f".B {escape(' '.join(['localqueue', *path.split()]))}",
    ]
    params = command.get_params(ctx)
    arguments = [p for p in params if not isinstance(p, TyperOption)]
    options = [p for p in params if isinstance(p, TyperOption) and not p.hidden]
    synopsis = ["[\\fIOPTIONS\\fR]"]
    synopsis += [f"\\fI{escape(argument_metavar(p, ctx))}\\fR" for p in arguments]
    if children:
        synopsis.append("\\fICOMMAND\\fR [\\fIARGS\\fR]...")
    lines.append(" ".join(synopsis))
    lines.append(".SH DESCRIPTION")
    for text in paragraphs(command.help or ""):
        if text.startswith("\b"):  # kept as written
            lines += [".PP", ".nf", *map(escape, text[1:].strip().splitlines()), ".fi"]
        else:
            lines += [".PP", escape(text)]
    if children:
        lines.append(".SH COMMANDS")
        for child, help_text in children:
            lines += [".TP", f".B {escape(child)}", escape(help_text)]
            lines.append(f"See \\fB{escape(page_name(f'{path} {child}'.strip()))}\\fR(1).")
    if arguments:
        lines.append(".SH ARGUMENTS")
        for param in arguments:
            metavar, help_text = param.get_help_record(ctx)
            lines += [".TP", f".I {escape(metavar)}", escape(" ".join(help_text.split()))]
    lines.append(".SH OPTIONS")
    for param in options:
        help_text = " ".join(param.get_help_record(ctx)[1].split())
        lines += [".TP", _option_tag(param, ctx), escape(help_text)]
    lines += _definitions("EXIT STATUS", EXIT_STATUS)
    environment = dict(ENVIRONMENT)
    if path == "queue exec":
        environment.update(EXEC_ENVIRONMENT)
    lines += _definitions("ENVIRONMENT", environment)
    lines += _definitions("FILES", FILES, tag="I")
    lines.append(".SH EXAMPLES")
    for caption, example in EXAMPLES.get(path, ()):
        if caption:
            lines += [".PP", escape(caption)]
        lines += [".PP", ".nf", ".RS 4", *map(escape, example.splitlines()), ".RE", ".fi"]
    see_also = ["localqueue(1)"] if path else []
    if " " in path:
        see_also.append(f"{page_name(path.split()[0])}(1)")
    see_also += ["sqlite3(1)", "flock(1)", "jq(1)"]
    lines += [".SH SEE ALSO", ", ".join(_reference(ref) for ref in see_also)]
    return "\n".join(lines) + "\n"


def _reference(ref: str) -> str:
    title, _, section = ref.partition("(")
    return f"\\fB{escape(title)}\\fR({section}"


def render() -> dict[str, str]:
    """Every man page: repository path -> text."""
    import typer
    from typer.core import TyperGroup
    from typer.main import get_command

    from localqueue.cli.app import PROG, build_app

    pages: dict[str, str] = {}

    def visit(command: Any, ctx: Any, path: str) -> list[tuple[str, str]]:
        """Write the pages of ``command`` and below; its commands (path below it, help)."""
        children: list[tuple[str, str]] = []
        leaves: list[tuple[str, str]] = []
        if isinstance(command, TyperGroup):
            for name in command.list_commands(ctx):
                sub = command.get_command(ctx, name)
                if sub is None or sub.hidden:
                    continue
                children.append((name, sub.get_short_help_str()))
                sub_ctx = typer.Context(sub, info_name=name, parent=ctx, **sub.context_settings)
                below = visit(sub, sub_ctx, f"{path} {name}".strip())
                leaves += [(f"{name} {leaf}", text) for leaf, text in below] or children[-1:]
        # the program's page lists every command; a group's page its own
        pages[f"man/{page_name(path)}.1"] = page(
            path, command, ctx, leaves if not path else children
        )
        return children

    root = get_command(build_app())
    visit(root, typer.Context(root, info_name=PROG, **root.context_settings), "")
    return dict(sorted(pages.items()))
