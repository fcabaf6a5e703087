"""What ``pip install`` gives, tried from a built wheel installed into a fresh venv (not
the checkout): every man page and completion script is inside the wheel, ``localqueue
completion`` prints the shipped scripts, ``--install`` puts them where real bash, zsh and
fish load them, and ``man`` finds the pages."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from .conftest import REPO, make_store, needs

pytestmark = pytest.mark.slow  # builds a wheel and a venv: seconds

SCRIPTS = {"bash": "localqueue.bash", "zsh": "_localqueue", "fish": "localqueue.fish"}
PAGES = sorted(p.name for p in (REPO / "man").glob("*.1"))
PIP = [sys.executable, "-m", "pip"]
BASH_COMPLETION = Path("/usr/share/bash-completion/bash_completion")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    build = ["wheel", "--no-deps", "--no-build-isolation", "-q", "--wheel-dir", str(out)]
    subprocess.run(
        [*PIP, *build, str(REPO)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (built,) = out.glob("localqueue-*.whl")
    return built


def fresh_venv(root: Path) -> str:
    """A venv at ``root`` without localqueue; its dependencies (Typer, orjson...) and
    build backend are the test environment's, reached through a .pth file rather than
    downloaded again. Returns its purelib directory."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    purelib = output(root, "import sysconfig; print(sysconfig.get_paths()['purelib'])")
    Path(purelib, "zz_test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return purelib


def output(root: Path, code: str) -> str:
    """What the Python code ``code`` prints, run by the venv at ``root``."""
    python = [str(root / "bin/python"), "-c", code]
    return subprocess.run(
        python, check=True, capture_output=True, text=True, cwd=root
    ).stdout.strip()


def pip_install(root: Path, *args: str) -> None:
    subprocess.run(
        [*PIP, "--python", str(root / "bin/python"), "install", "-q", "--no-deps", *args],
        check=True,
        capture_output=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel installed."""
    root = tmp_path_factory.mktemp("venv") / "venv"
    purelib = fresh_venv(root)
    pip_install(root, str(wheel))
    installed = output(root, "import localqueue; print(localqueue.__file__)")
    assert installed.startswith(purelib), installed  # the wheel's copy, not the checkout
    return root


@pytest.fixture
def user(venv: Path, env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """A user whose PATH finds the wheel's ``localqueue`` first, HOME in ``tmp_path``."""
    clean = {k: v for k, v in env.items() if k not in ("XDG_DATA_HOME", "FPATH", "MANPATH")}
    return dict(clean, PATH=f"{venv / 'bin'}{os.pathsep}/usr/bin:/bin")


def run(args: list[str], env: dict[str, str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=60, **kwargs)


def test_the_wheel_carries_every_man_page_and_completion_script(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        data = next(n.split("/")[0] for n in names if ".data/" in n) + "/data/"
        expected = {f"localqueue/data/man/{page}": f"man/{page}" for page in PAGES}
        expected.update({f"{data}share/man/man1/{page}": f"man/{page}" for page in PAGES})
        for script in SCRIPTS.values():
            expected[f"localqueue/data/completions/{script}"] = f"completions/{script}"
        expected[f"{data}share/bash-completion/completions/localqueue"] = (
            "completions/localqueue.bash"
        )
        expected[f"{data}share/zsh/site-functions/_localqueue"] = "completions/_localqueue"
        expected[f"{data}share/fish/vendor_completions.d/localqueue.fish"] = (
            "completions/localqueue.fish"
        )
        assert set(expected) <= names
        for inside, committed in expected.items():
            assert archive.read(inside) == (REPO / committed).read_bytes(), inside
    assert len(PAGES) >= 24 and "localqueue-completion.1" in PAGES


@pytest.mark.parametrize("shell", list(SCRIPTS))
def test_completion_prints_the_shipped_script(shell, user):
    result = subprocess.run(
        ["localqueue", "completion", shell], env=user, capture_output=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == (REPO / "completions" / SCRIPTS[shell]).read_bytes()


@needs("bash")
@pytest.mark.skipif(not BASH_COMPLETION.exists(), reason="the bash-completion package is missing")
def test_bash_loads_the_installed_script_on_demand(user, tmp_path):
    installed = run(["localqueue", "completion", "--install", "bash"], user)
    assert installed.returncode == 0, installed.stderr
    target = tmp_path / "home/.local/share/bash-completion/completions/localqueue"
    assert target.read_bytes() == (REPO / "completions/localqueue.bash").read_bytes()
    assert f"wrote {target}" in installed.stderr and installed.stdout == ""
    store = tmp_path / "q.sqlite3"
    make_store(store, {"emails": [1], "reports": [2]})
    tab = (
        f"source {BASH_COMPLETION}; __load_completion localqueue; "
        "COMP_WORDS=(localqueue queue add ''); COMP_CWORD=3; "
        '_localqueue_completion localqueue; printf "%s\\n" "${COMPREPLY[@]}"'
    )
    result = run(["bash", "-c", tab], dict(user, LOCALQUEUE_STORE_PATH=str(store)))
    assert result.stdout.split() == ["emails", "reports"], result.stderr
    # XDG_DATA_HOME moves it
    data = tmp_path / "data"
    moved = run(
        ["localqueue", "completion", "--install", "bash"], dict(user, XDG_DATA_HOME=str(data))
    )
    assert moved.returncode == 0, moved.stderr
    assert (data / "bash-completion/completions/localqueue").exists()


@needs("zsh")
def test_zsh_install_names_the_fpath_line_and_autoloads(user, tmp_path):
    home = tmp_path / "home"
    installed = run(["localqueue", "completion", "--install", "zsh"], user)
    assert installed.returncode == 0, installed.stderr
    assert (home / ".zfunc/_localqueue").read_bytes() == (
        REPO / "completions/_localqueue"
    ).read_bytes()
    assert "fpath+=(~/.zfunc)" in installed.stderr
    assert not (home / ".zshrc").exists()  # never edits an rc file
    store = tmp_path / "q.sqlite3"
    make_store(store, {"emails": [1], "reports": [2]})
    code = (
        "fpath=(~/.zfunc $fpath); autoload -Uz compinit && compinit -u -D; "
        '_arguments() { print -r -- "$@" }; '
        "words=(localqueue queue add ''); CURRENT=4; _localqueue"
    )
    result = run(["zsh", "-f", "-c", code], dict(user, LOCALQUEUE_STORE_PATH=str(store)))
    assert result.stdout.strip() == '*: :(("emails" "reports"))', result.stderr
    # a writable $FPATH directory under HOME is used as it is, with nothing to add
    functions = home / ".zsh/functions"
    functions.mkdir(parents=True)
    fpath = f"/usr/share/zsh/functions{os.pathsep}{functions}"
    again = run(["localqueue", "completion", "--install", "zsh"], dict(user, FPATH=fpath))
    assert (functions / "_localqueue").exists() and "fpath+=" not in again.stderr


@needs("fish")
def test_fish_loads_the_installed_script(user, tmp_path):
    installed = run(["localqueue", "completion", "--install", "fish"], user)
    assert installed.returncode == 0, installed.stderr
    target = tmp_path / "home/.config/fish/completions/localqueue.fish"
    assert target.read_bytes() == (REPO / "completions/localqueue.fish").read_bytes()
    result = run(["fish", "-c", "complete -C 'localqueue que'"], user)
    assert result.stdout.startswith("queue\t"), result.stderr


@needs("man")
def test_man_finds_the_installed_pages(user, venv):
    for env in (dict(user, MANPATH=str(venv / "share/man")), user):  # man-db also maps PATH
        where = run(["man", "-w", "localqueue-queue-add"], env)
        assert where.stdout.strip() == str(venv / "share/man/man1/localqueue-queue-add.1")
    shown = run(["localqueue", "man", "queue", "add"], dict(user, MANWIDTH="100"))
    assert shown.returncode == 0, shown.stderr
    assert "localqueue queue add [OPTIONS] NAME" in shown.stdout
    assert "jq -c '.[]' users.json | localqueue queue add emails" in shown.stdout


def test_man_without_man_prints_the_roff_source(venv, user, tmp_path):
    bin_dir = tmp_path / "bin"  # a PATH with python but no man
    bin_dir.mkdir()
    env = dict(user, PATH=f"{venv / 'bin'}{os.pathsep}{bin_dir}")
    assert shutil.which("man", path=env["PATH"]) is None
    shown = run([str(venv / "bin/localqueue"), "man", "queue", "exec"], env)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == (REPO / "man/localqueue-queue-exec.1").read_text()
    missing = run([str(venv / "bin/localqueue"), "man", "queue", "frobnicate"], env)
    assert missing.returncode == 2
    assert "no manual page for 'localqueue queue frobnicate'" in missing.stderr


def test_the_shell_defaults_to_the_one_shell_names(user, tmp_path):
    installed = run(["localqueue", "completion", "--install"], dict(user, SHELL="/usr/bin/fish"))
    assert installed.returncode == 0, installed.stderr
    assert (tmp_path / "home/.config/fish/completions/localqueue.fish").exists()
    printed = run(["localqueue", "completion"], dict(user, SHELL="/bin/zsh"))
    assert printed.stdout == (REPO / "completions/_localqueue").read_text()
    unknown = run(["localqueue", "completion"], dict(user, SHELL="/bin/tcsh"))
    assert unknown.returncode == 2 and unknown.stdout == ""
    assert "name the shell: bash, zsh or fish ($SHELL is tcsh)" in unknown.stderr
    wrong = run(["localqueue", "completion", "powershell"], user)
    assert wrong.returncode == 2 and "SHELL must be bash, zsh or fish" in wrong.stderr


def shared_files(root: Path) -> dict[str, bytes]:
    """The man pages and completion scripts under the venv's ``share/``."""
    share = root / "share"
    return {str(p.relative_to(share)): p.read_bytes() for p in share.rglob("*") if p.is_file()}


@needs("man")
def test_an_editable_install_over_the_wheel_keeps_the_man_pages_and_completions(
    wheel, user, tmp_path
):
    """The README's two commands in one venv: `pip install .` then `pip install -e .`."""
    root = tmp_path / "venv"
    fresh_venv(root)
    pip_install(root, str(wheel))
    from_wheel = shared_files(root)
    assert len(from_wheel) == len(PAGES) + len(SCRIPTS)
    pip_install(root, "--no-build-isolation", "-e", str(REPO))
    assert output(root, "import localqueue; print(localqueue.__file__)") == str(
        REPO / "localqueue" / "__init__.py"
    )
    assert shared_files(root) == from_wheel  # the same files, the same bytes
    found = run(
        ["man", "-w", "localqueue-queue-exec"], dict(user, PATH=f"{root / 'bin'}:/usr/bin:/bin")
    )
    assert found.stdout.strip() == str(root / "share/man/man1/localqueue-queue-exec.1")
