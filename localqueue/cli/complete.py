"""Shell completion without Typer: answers ``_LOCALQUEUE_COMPLETE=complete_bash|zsh|fish``.

Every TAB runs ``localqueue`` again (the scripts in ``completions/`` are Typer's dynamic
ones). Building the Typer tree costs more than a TAB may take, so :func:`respond`, called
first thing by ``app.main``, answers from ``completion_tree.json`` (the command tree,
generated from the Typer app by ``scripts/gen_completions.py``) and from the store:

* queue names for every argument declared with ``options.queue_name()``;
* message ids for ``queue inspect`` (any state), ``ack`` and ``release`` (inflight) and
  ``requeue-dead`` (dead letters): the oldest ones first, at most ``LIMIT``.

The store is the one the command line would use (``--store-path`` or ``-s``, else
``LOCALQUEUE_STORE_PATH``, else the config file, else the default). It is opened read-only
and never created, and read with the queries of ``localqueue.stores._sqlite_sql`` (its "shell
completion" section, next to the schema they read). A missing file, an ``lmdb://`` or
``postgresql://`` store (not worth a connection per TAB), a locked, corrupt or foreign file
all complete nothing. Nothing here prints a traceback: a completion that fails is an empty
one, and with ``LOCALQUEUE_DEBUG`` set :func:`debug` says why on stderr, in one line.

Output formats are the ones Typer's scripts read (Typer's own answers have them too):
bash wants one value per line; zsh an ``_arguments`` call, or ``_files`` when there is
nothing; fish ``value<TAB>help`` lines for ``get-args`` and an exit status for ``is-args``.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing costs start-up time, which every TAB pays; mypy reads these
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "ENV",
    "LIMIT",
    "debug",
    "message_ids",
    "queue_names",
    "respond",
    "source",
    "store_file",
]

ENV = "_LOCALQUEUE_COMPLETE"
LIMIT = 200  # message ids offered at most
BUDGET = 0.02  # seconds a store query may take before it is cut short
TREE_FILE = os.path.join(os.path.dirname(__file__), "completion_tree.json")
# Which message ids a command can use (None: any state; see _sqlite_sql.COMPLETION_STATES).
ID_STATES: dict[str, str | None] = {
    "queue inspect": None,
    "queue delete": None,
    "queue ack": "inflight",
    "queue release": "inflight",
    "queue requeue-dead": "dead",
}

Item = tuple[str, str]  # value, help


def respond(instruction: str) -> int | None:
    """Answer ``_LOCALQUEUE_COMPLETE=instruction``; the exit status, or None when it is not
    a completion request this module knows (Typer then reports it)."""
    shell = instruction.partition("_")[2]
    if instruction.startswith("source_") and shell in ("bash", "zsh", "fish"):
        sys.stdout.write(source(shell))
        return 0
    if not instruction.startswith("complete_") or shell not in ("bash", "zsh", "fish"):
        return None
    try:
        args, incomplete = _words(shell, os.environ)
        answer = complete(args, incomplete)
    except Exception as exc:  # a completion never prints a traceback: it offers nothing
        debug(f"{type(exc).__name__}: {exc}")
        answer = []
    if isinstance(answer, CommandAt):
        if shell == "fish" and os.environ.get("_TYPER_COMPLETE_FISH_ACTION") == "is-args":
            return 0
        sys.stdout.write(_command_at(shell, answer.index))
        return 0
    items = answer
    if shell == "fish" and os.environ.get("_TYPER_COMPLETE_FISH_ACTION") == "is-args":
        return 0 if items else 1  # 1: let fish complete file names
    if shell == "fish":
        text = "\n".join(f"{v}\t{' '.join(h.split())}" if h else v for v, h in items)
    elif shell == "zsh":
        text = _zsh(items)
    else:
        cut = _colon_cut(os.environ) if items else 0  # (items: COMP_WORDS parsed)
        text = "\n".join(value[cut:] for value, _ in items)
    try:
        sys.stdout.write(text + "\n" if text else "")
        sys.stdout.flush()
    except OSError:
        pass
    return 0


def _command_at(shell: str, index: int) -> str:
    """What tells ``shell`` to complete the words from ``index`` on as a command line: zsh
    evaluates our answer (so: drop the words before it and let ``_normal`` complete), the
    bash and fish scripts look for a ``--command-at=`` line."""
    if shell == "zsh":
        return f"shift {index} words; (( CURRENT -= {index} )); _normal\n"
    return f"--command-at={index}\n"


def _zsh(items: list[Item]) -> str:
    """An ``_arguments`` call offering ``items`` (with help), or ``_files`` for none."""
    if not items:
        return "_files"

    def quote(text: str) -> str:
        text = text.replace('"', '""').replace("'", "''").replace("$", "\\$")
        return text.replace("`", "\\`").replace(":", "\\\\:")

    lines = [
        f'"{quote(v)}":"{quote(" ".join(h.split()))}"' if h else f'"{quote(v)}"' for v, h in items
    ]
    joined = "\n".join(lines)
    return f"_arguments '*: :(({joined}))'"


def source(shell: str) -> str:
    """The completion script for ``shell``: Typer's, with a header, and for zsh the
    ``#compdef`` first line and the guard that makes the first TAB work when autoloaded."""
    script = _typer_script(shell)
    header = (
        f"# localqueue {shell} completion: generated by scripts/gen_completions.py; do not edit.\n"
        f"# Each TAB runs `localqueue` with {ENV}=complete_{shell} (answered by\n"
        "# localqueue/cli/complete.py without importing Typer).\n"
    )
    if shell == "bash":
        ending = "    return 0\n}"
        assert ending in script, "Typer's bash script changed: see complete.source"
        script = script.replace(
            ending,
            "    if [[ ${COMPREPLY[0]} == --command-at=* ]]; then\n"
            "        # queue exec NAME -- CMD...: complete CMD as sudo and xargs do\n"
            "        local at=${COMPREPLY[0]#--command-at=}\n"
            "        COMPREPLY=()\n"
            "        if declare -F _command_offset >/dev/null; then\n"
            '            _command_offset "$at"\n'
            "        elif (( COMP_CWORD == at )); then\n"
            '            COMPREPLY=( $(compgen -c -- "${COMP_WORDS[COMP_CWORD]}") )\n'
            "        fi\n"
            "    fi\n" + ending,
        )
        return header + script.strip() + "\n"
    if shell == "fish":
        ask = "env _LOCALQUEUE_COMPLETE=complete_fish _TYPER_COMPLETE_FISH_ACTION=get-args"
        call = f"({ask} _TYPER_COMPLETE_ARGS=(commandline -cp) localqueue)"
        assert call in script, "Typer's fish script changed: see complete.source"
        function = (
            "function __localqueue_complete\n"
            f"    set -l reply {call}\n"
            "    if string match -q -- '--command-at=*' $reply[1]\n"
            "        # queue exec NAME -- CMD...: complete CMD as sudo and xargs do\n"
            "        set -l at (string replace -- '--command-at=' '' $reply[1])\n"
            "        set -l tokens (commandline -cop) (commandline -ct)\n"
            "        __fish_complete_subcommand --commandline $tokens[(math $at + 1)..-1]\n"
            "    else\n"
            "        printf '%s\\n' $reply\n"
            "    end\n"
            "end\n"
        )
        return header + function + script.replace(call, "(__localqueue_complete)").strip() + "\n"
    body = script.replace("#compdef localqueue", "").strip()
    body = body.replace(
        "compdef _localqueue_completion localqueue",
        "if [[ $zsh_eval_context[-1] == loadautofunc ]]; then\n"
        "  # autoloaded from $fpath: complete now\n"
        '  _localqueue_completion "$@"\n'
        "else\n"
        "  # sourced: register for later\n"
        "  compdef _localqueue_completion localqueue\n"
        "fi",
    )
    return "#compdef localqueue\n" + header + "\n" + body + "\n"


def _typer_script(shell: str) -> str:
    """Typer's dynamic completion script for ``shell``, asked for the documented way: a
    Typer app with completion (Typer's default, which also registers Typer's bash, zsh and
    fish scripts) run as ``localqueue`` with ``_LOCALQUEUE_COMPLETE=source_<shell>``."""
    import typer
    from typer.testing import CliRunner

    app = typer.Typer()

    @app.command()
    def localqueue() -> None:  # pragma: no cover - never run: the script is printed first
        """A stand-in: the script depends only on the program's name."""

    result = CliRunner().invoke(app, [], prog_name="localqueue", env={ENV: f"source_{shell}"})
    assert result.exit_code == 0, f"Typer gave no {shell} completion script: {result.output}"
    return result.stdout


# -- what the shell sent ------------------------------------------------------------------


def _split(text: str) -> list[str]:
    """Split like a POSIX shell (quotes and backslashes); an unclosed quote ends the text."""
    words: list[str] = []
    word: list[str] = []
    in_word = False
    quote = ""
    index = 0
    while index < len(text):
        char = text[index]
        index += 1
        if quote == "'":
            if char == "'":
                quote = ""
            else:
                word.append(char)
        elif quote == '"':
            if char == '"':
                quote = ""
            elif char == "\\" and index < len(text) and text[index] in '"\\$`':
                word.append(text[index])
                index += 1
            else:
                word.append(char)
        elif char in " \t\n":
            if in_word:
                words.append("".join(word))
                word, in_word = [], False
        else:
            in_word = True
            if char in "'\"":
                quote = char
            elif char == "\\" and index < len(text):
                word.append(text[index])
                index += 1
            else:
                word.append(char)
    if in_word:
        words.append("".join(word))
    return words


def _join_colons(words: list[str]) -> list[str]:
    """Words as typed: bash splits ``a:b`` (a ``module:function``, a URL) into ``a``,
    ``:``, ``b`` (``:`` is in COMP_WORDBREAKS)."""
    joined: list[str] = []
    glue = False
    for word in words:
        if word == ":" and joined:
            joined[-1] += ":"
            glue = True
        elif glue:
            joined[-1] += word
            glue = False
        else:
            joined.append(word)
    return joined


def _colon_cut(env: Any) -> int:
    """How much of the word being completed bash will not replace: all of it up to its
    last ``:``, that colon included (readline replaces only the text after it, also when
    the cursor is right after the colon and COMP_WORDS' last word is the ``:``)."""
    words = _split(env.get("COMP_WORDS", ""))
    cword = int(env.get("COMP_CWORD", "0"))
    raw = words[cword] if cword < len(words) else ""
    cur = _join_colons([*words[:cword], raw])[-1]
    return cur.rfind(":") + 1


def _words(shell: str, env: Any) -> tuple[list[str], str]:
    """The words before the cursor (without the program name) and the word being typed."""
    if shell == "bash":
        words = _split(env.get("COMP_WORDS", ""))
        cword = int(env.get("COMP_CWORD", "0"))
        words = _join_colons([*words[:cword], words[cword] if cword < len(words) else ""])
        return words[1:-1], words[-1]
    line = env.get("_TYPER_COMPLETE_ARGS", "")
    words = _split(line)[1:]
    if words and not line.endswith(" "):
        return words[:-1], words[-1]
    return words, ""


# -- what to offer ------------------------------------------------------------------------


def _tree() -> dict[str, Any]:
    import json  # orjson would cost more to import than it saves here

    with open(TREE_FILE, encoding="utf-8") as file:
        tree: dict[str, Any] = json.load(file)
    return tree


class CommandAt:
    """The answer after ``queue exec NAME --``: the words from ``index`` on (0 is the
    program's name) are a command line of their own, which the shell completes as it
    completes one after ``sudo`` or ``xargs``."""

    __slots__ = ("index",)

    def __init__(self, index: int) -> None:
        self.index = index


def complete(args: list[str], incomplete: str) -> list[Item] | CommandAt:
    """The completions for ``incomplete`` after ``args`` (as Click would resolve them)."""
    tree = _tree()
    # bash splits `--opt=value` into `--opt`, `=`, `value`; other shells keep one word.
    if incomplete == "=":
        incomplete = ""
    elif incomplete.startswith("-") and "=" in incomplete:
        name, _, incomplete = incomplete.partition("=")
        args = [*args, name]
    words: list[str] = []
    for arg in args:
        if arg == "=":
            continue
        if arg.startswith("--") and "=" in arg:
            words.extend(arg.split("=", 1))
        else:
            words.append(arg)
    path = ""
    node = tree[path]
    values: dict[str, str] = {}  # option values by destination: "store_path" for -s too
    used: set[str] = set()
    positionals: list[str] = []
    pending = ""
    dashdash = False
    for word in words:
        if pending:
            values[node["options"][pending]["dest"]], pending = word, ""
        elif dashdash:
            positionals.append(word)
        elif word == "--":
            dashdash = True
        elif word.startswith("-") and word != "-":
            used.add(word)
            option = node["options"].get(word)
            if option is not None and option["value"]:
                pending = word
        elif node["commands"] and not positionals:
            if word not in node["commands"]:
                return []
            path = f"{path} {word}".strip()
            node, used = tree[path], set()
        else:
            positionals.append(word)
    if incomplete.startswith("-") and not dashdash:
        return [
            (name, option["help"])
            for name, option in node["options"].items()
            if name.startswith(incomplete) and name not in used
        ]
    if pending:
        choices = node["options"][pending]["choices"]
        return [(choice, "") for choice in choices if choice.startswith(incomplete)]
    if node["commands"]:
        return [(n, h) for n, h in node["commands"].items() if n.startswith(incomplete)]
    kinds = node["arguments"]
    kind = kinds[len(positionals)] if len(positionals) < len(kinds) else ""
    if not kind and kinds and kinds[-1] in ("command", "man", "ids"):  # variadic: the rest
        kind = kinds[-1]
    if kind == "command":
        # queue exec NAME -- CMD...: the words after `--` are a command line of their own
        return CommandAt(args.index("--") + 2) if dashdash and "--" in args else []
    if kind == "man":
        below = tree.get(" ".join([*positionals[len(kinds) - 1 :]]))
        return [
            (n, h) for n, h in (below or {}).get("commands", {}).items() if n.startswith(incomplete)
        ]
    if kind == "setting":
        choices = node.get("values", {}).get(positionals[0], []) if positionals else []
        return [(c, "") for c in choices if c.startswith(incomplete)]
    if kind == "handler":
        return [(h, "") for h in handlers(incomplete)]
    if kind == "queue":
        return [(name, "") for name in queue_names(store_file(values), incomplete)]
    if kind in ("id", "ids") and path in ID_STATES and positionals:
        ids = message_ids(store_file(values), positionals[0], ID_STATES[path], incomplete)
        return [(i, "") for i in ids if i not in positionals[1:]]
    if kind.startswith("choice:"):
        return [(c, "") for c in kind[7:].split("|") if c.startswith(incomplete)]
    return []


def handlers(incomplete: str, directory: str = ".") -> list[str]:
    """``queue process`` handlers: the modules importable from ``directory`` (``.py``
    files and packages, then their submodules after a dot) and, once ``module:`` is typed,
    that module's top-level functions, read with ``ast`` (nothing is imported: completing
    must not run the user's code)."""
    module, colon, prefix = incomplete.partition(":")
    parts = module.split(".")
    base = os.path.join(directory, *parts[:-1]) if colon == "" else directory
    if colon:
        path = os.path.join(directory, *parts)
        source = path + ".py" if os.path.isfile(path + ".py") else os.path.join(path, "__init__.py")
        return [f"{module}:{f}" for f in _functions(source) if f.startswith(prefix)]
    package = ".".join(parts[:-1])
    found = []
    try:
        entries = sorted(os.scandir(base), key=lambda e: e.name)
    except OSError:
        return []
    for entry in entries:
        name = entry.name
        if name.endswith(".py") and entry.is_file():
            name = name[:-3]
        elif not (entry.is_dir() and os.path.isfile(os.path.join(entry.path, "__init__.py"))):
            continue
        if not name.isidentifier() or name == "__init__":
            continue
        full = f"{package}.{name}" if package else name
        if full.startswith(module):
            found.append(full)
    return found


def _functions(source: str) -> list[str]:
    """The public top-level functions defined in the Python file ``source``."""
    import ast

    try:
        with open(source, encoding="utf-8") as file:
            tree = ast.parse(file.read(), source)
    except (OSError, SyntaxError, ValueError):
        return []
    kinds = (ast.FunctionDef, ast.AsyncFunctionDef)
    return [n.name for n in tree.body if isinstance(n, kinds) and not n.name.startswith("_")]


def store_file(values: dict[str, str]) -> str | None:
    """The SQLite file the command line would use (``values``: the options given, by
    destination), or None (no such file, another kind of store, or settings that do not
    resolve)."""
    from localqueue import config

    try:
        store = config.resolve({"store_path": values.get("store_path")}).store
    except Exception as exc:
        debug(f"settings: {exc}")
        return None
    path = str(store)
    if store.kind != "sqlite":
        debug(f"{path}: only SQLite stores are read to complete queue names and ids")
        return None
    if not os.path.isfile(path):
        debug(f"{path}: no such store file")
        return None
    return path


def debug(reason: str) -> None:
    """Say on stderr (one line) why completion offers less than it could, when
    ``LOCALQUEUE_DEBUG`` is set; a TAB is otherwise silent on stderr, whatever fails."""
    if not os.environ.get("LOCALQUEUE_DEBUG"):
        return
    try:
        sys.stderr.write(f"localqueue: completion: {' '.join(reason.split())}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


# -- the store, read-only -----------------------------------------------------------------


def _read(path: str, lookup: Any) -> list[str] | None:
    """``lookup(rows)`` over a read-only connection to ``path`` (``rows(sql, params)`` runs
    one query within the time budget); None, and why under ``LOCALQUEUE_DEBUG``, when the
    file cannot be read as a localqueue store."""
    import sqlite3

    def rows(sql: str, params: Any) -> list[Any]:
        found: list[Any] = []
        try:
            for row in conn.execute(sql, params):
                found.append(row)
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode != sqlite3.SQLITE_INTERRUPT:
                raise
            debug(f"{path}: the store took over {BUDGET * 1000:.0f} ms; offering what was read")
        return found

    try:
        from localqueue.backends.sqlite_file import read_only

        conn = read_only(path, BUDGET)
        try:
            result: list[str] = lookup(rows)
        finally:
            conn.close()
    except Exception as exc:
        debug(f"{path}: {exc}")
        return None
    return result


def queue_names(path: str | None, prefix: str = "") -> list[str]:
    """The queues SQLite store ``path`` has held (drained ones too, as ``queue list``
    shows them) whose name starts with ``prefix``."""
    if path is None:
        return []
    from localqueue.stores import _sqlite_sql as sql

    return _read(path, lambda rows: sql.completion_queues(rows, prefix)) or []


def message_ids(path: str | None, queue: str, state: str | None, prefix: str = "") -> list[str]:
    """Up to ``LIMIT`` ids of ``queue``'s messages (in ``state``, ``"inflight"`` or
    ``"dead"``, unless None) starting with ``prefix``, oldest first."""
    if path is None:
        return []
    from localqueue.stores import _sqlite_sql as sql

    ids = _read(path, lambda rows: sql.completion_ids(rows, queue, state, prefix, LIMIT))
    if ids == []:  # read, and nothing there (an unknown queue, say)
        kind = f"{state} " if state else ""
        starting = f" starting with {prefix!r}" if prefix else ""
        debug(f"{path}: queue {queue!r} has no {kind}message ids{starting}")
    return ids or []
