"""hatch_build.py: an editable install byte-compiles the package; both it and a wheel put
the man pages and completion scripts under share/, and a wheel carries them in the package
too (real installs of both are in tests/docs/test_wheel.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("hatchling", reason="hatchling (the build backend) is not installed")

ROOT = Path(__file__).resolve().parent.parent


def _hook(root: Path, target: str):
    spec = importlib.util.spec_from_file_location("hatch_build", ROOT / "hatch_build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.ShippedFiles(str(root), {}, None, None, str(root / "dist"), target)


def _project(tmp_path: Path) -> Path:
    package = tmp_path / "localqueue"
    (package / "cli").mkdir(parents=True)
    (package / "__init__.py").write_text("X = 1\n")
    (package / "cli" / "app.py").write_text("def main():\n    return 0\n")
    (tmp_path / "completions").mkdir()
    (tmp_path / "completions" / "localqueue.bash").write_text("complete\n")
    (tmp_path / "man").mkdir()
    (tmp_path / "man" / "localqueue.1").write_text(".TH\n")
    return package


def _build_data() -> dict:
    return {"force_include": {}, "shared_data": {}}


def test_editable_install_compiles_every_module_and_ships_the_man_pages_under_share(tmp_path):
    package = _project(tmp_path)
    data = _build_data()
    _hook(tmp_path, "wheel").initialize("editable", data)
    assert [p.name.split(".")[0] for p in (package / "__pycache__").glob("*.pyc")] == ["__init__"]
    assert [p.name.split(".")[0] for p in (package / "cli" / "__pycache__").glob("*.pyc")] == [
        "app"
    ]
    # localqueue man and completion read the checkout's files; man and the shells, share/
    bash, page = str(tmp_path / "completions/localqueue.bash"), str(tmp_path / "man/localqueue.1")
    assert data == {
        "force_include": {},
        "shared_data": {
            bash: "share/bash-completion/completions/localqueue",
            page: "share/man/man1/localqueue.1",
        },
    }


def test_a_wheel_carries_the_man_pages_and_completions(tmp_path):
    package = _project(tmp_path)
    data = _build_data()
    _hook(tmp_path, "wheel").initialize("standard", data)
    assert not list(package.rglob("*.pyc"))
    bash, page = str(tmp_path / "completions/localqueue.bash"), str(tmp_path / "man/localqueue.1")
    assert data["force_include"] == {
        bash: "localqueue/data/completions/localqueue.bash",
        page: "localqueue/data/man/localqueue.1",
    }
    assert data["shared_data"] == {
        bash: "share/bash-completion/completions/localqueue",
        page: "share/man/man1/localqueue.1",
    }


def test_an_sdist_is_left_alone(tmp_path):
    package = _project(tmp_path)
    data = _build_data()
    _hook(tmp_path, "sdist").initialize("standard", data)
    assert not list(package.rglob("*.pyc")) and data == _build_data()
