"""hatch_build.py: an editable install byte-compiles the package; a wheel build does not."""

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
    return module.CompileEditable(str(root), {}, None, None, str(root / "dist"), target)


def _project(tmp_path: Path) -> Path:
    package = tmp_path / "localqueue"
    (package / "cli").mkdir(parents=True)
    (package / "__init__.py").write_text("X = 1\n")
    (package / "cli" / "app.py").write_text("def main():\n    return 0\n")
    return package


def test_editable_install_compiles_every_module(tmp_path):
    package = _project(tmp_path)
    _hook(tmp_path, "wheel").initialize("editable", {})
    assert [p.name.split(".")[0] for p in (package / "__pycache__").glob("*.pyc")] == ["__init__"]
    assert [p.name.split(".")[0] for p in (package / "cli" / "__pycache__").glob("*.pyc")] == [
        "app"
    ]


@pytest.mark.parametrize(("target", "version"), [("wheel", "standard"), ("sdist", "standard")])
def test_other_builds_write_nothing(tmp_path, target, version):
    package = _project(tmp_path)
    _hook(tmp_path, target).initialize(version, {})
    assert not list(package.rglob("*.pyc"))
