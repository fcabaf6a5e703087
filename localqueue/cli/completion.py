"""``localqueue completion``: print the shell completion script, or install it for the user.

The scripts are the shipped ones (``localqueue.cli.shipped``), byte for byte the files in
the repository's ``completions/``. ``--install`` writes one file into the directory the
shell reads completions from for this user and never edits an rc file: where the shell
needs a line there (zsh without a writable ``$fpath`` directory under ``$HOME``; bash whose
new sessions do not load the bash-completion package, which is what reads that
directory), it says which line to add.
"""

import os
import sys
from typing import TYPE_CHECKING, Annotated

if TYPE_CHECKING:
    import typer

HELP = """Print or install the shell completion script. SHELL is bash, zsh or fish
(default: the one $SHELL names); the script goes to stdout, or with --install to where
that shell looks for it for your user (no rc file is ever edited). The places:

\b
bash: ${XDG_DATA_HOME:-~/.local/share}/bash-completion/completions/localqueue (read by
      the bash-completion package; --install asks bash whether new sessions load it,
      and when not, says so and prints the line for ~/.bashrc that loads the script)
zsh:  _localqueue in a $fpath directory (--install: ~/.zfunc, then fpath+=(~/.zfunc))
fish: ${XDG_CONFIG_HOME:-~/.config}/fish/completions/localqueue.fish

For the running shell only: eval "$(localqueue completion bash)" (zsh: source <(...))."""

SHELLS = ("bash", "zsh", "fish")


def script(shell: str) -> bytes:
    """The shipped completion script of ``shell``."""
    from localqueue.cli import shipped
    from localqueue.cli.exit_codes import CliError

    relative = f"completions/{shipped.SCRIPTS[shell]}"
    found = shipped.path(relative)
    if found is None:
        raise CliError(f"{relative} is missing from this installation (reinstall localqueue)")
    with open(found, "rb") as file:
        return file.read()


def choose_shell(shell: str | None) -> str:
    """``shell``, else the one ``$SHELL`` names; a usage error when neither is known."""
    from localqueue.cli.exit_codes import UsageError

    if shell is None:
        shell = os.path.basename(os.environ.get("SHELL", ""))
        if shell not in SHELLS:
            raise UsageError(f"name the shell: bash, zsh or fish ($SHELL is {shell or 'unset'})")
    if shell not in SHELLS:
        raise UsageError(f"SHELL must be bash, zsh or fish, got {shell!r}")
    return shell


def _under(directory: str, parent: str) -> bool:
    directory, parent = os.path.realpath(directory), os.path.realpath(parent)
    return os.path.commonpath([directory, parent]) == parent


def _xdg(variable: str, default: str) -> str:
    value = os.environ.get(variable, "")
    return value if os.path.isabs(value) else os.path.join(os.path.expanduser("~"), default)


def bash_completion_loaded() -> bool | None:
    """Whether a new interactive bash of this user loads the bash-completion package
    (``BASH_COMPLETION_VERSINFO`` set), asked of bash itself: the package may be missing,
    or installed but not enabled in the rc files. None when bash cannot tell (not
    installed, or its rc files took over 10 s). Run in a session of its own, so that it
    never touches the terminal."""
    import shutil
    import subprocess

    bash = shutil.which("bash")
    if bash is None:
        return None
    try:
        asked = subprocess.run(
            [bash, "-i", "-c", "[[ -n ${BASH_COMPLETION_VERSINFO-} ]]"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return asked.returncode == 0


def _bash_next_step(path: str) -> str:
    """What a bash user does after ``--install``, as bash answers
    :func:`bash_completion_loaded`."""
    import shlex

    loaded = bash_completion_loaded()
    if loaded:
        return "new bash sessions load it (through the bash-completion package)"
    source = f"  source {shlex.quote(path)}"
    if loaded is None:
        return (
            "new bash sessions load it if they load the bash-completion package; if they"
            f" do not, add this line to ~/.bashrc:\n{source}"
        )
    return (
        "new bash sessions do not load the bash-completion package (not installed, or not"
        " enabled in ~/.bashrc), which is what reads that file: install it (apt install"
        " bash-completion, say), or load the script without it with this line in"
        f" ~/.bashrc:\n{source}"
    )


def target(shell: str) -> tuple[str, str]:
    """Where ``--install`` writes ``shell``'s script, and what the user does next."""
    home = os.path.expanduser("~")
    if shell == "bash":
        directory = os.path.join(_xdg("XDG_DATA_HOME", ".local/share"), "bash-completion")
        path = os.path.join(directory, "completions", "localqueue")
        return path, _bash_next_step(path)
    if shell == "fish":
        directory = os.path.join(_xdg("XDG_CONFIG_HOME", ".config"), "fish", "completions")
        return os.path.join(directory, "localqueue.fish"), "new fish sessions load it"
    for directory in os.environ.get("FPATH", "").split(":"):
        if (
            directory
            and os.path.isdir(directory)
            and _under(directory, home)
            and os.access(directory, os.W_OK)
        ):
            return os.path.join(directory, "_localqueue"), "new zsh sessions load it"
    zfunc = os.path.join(home, ".zfunc")
    return (
        os.path.join(zfunc, "_localqueue"),
        "unless ~/.zfunc is already in your $fpath, add this line to ~/.zshrc before "
        "compinit:\n  fpath+=(~/.zfunc)",
    )


def install(shell: str) -> str:
    """Write ``shell``'s script where the shell finds it for this user; its path."""
    path, next_step = target(shell)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    temporary = f"{path}.tmp{os.getpid()}"
    with open(temporary, "wb") as file:
        file.write(script(shell))
    os.replace(temporary, path)
    sys.stderr.write(f"localqueue: wrote {path}\nlocalqueue: {next_step}\n")
    return path


def run(shell: str | None = None, install_it: bool = False) -> None:
    shell = choose_shell(shell)
    if install_it:
        install(shell)
        return
    sys.stdout.buffer.write(script(shell))


def register(app: "typer.Typer") -> None:
    import typer

    @app.command("completion", help=HELP)
    def completion(
        shell: Annotated[
            str | None,
            typer.Argument(
                metavar="[SHELL]",
                help="bash, zsh or fish; default: the one $SHELL names.",
                show_default=False,
            ),
        ] = None,
        install_it: Annotated[
            bool,
            typer.Option(
                "--install", help="Write the script into your user's completion directory."
            ),
        ] = False,
    ) -> None:
        run(shell, install_it)
