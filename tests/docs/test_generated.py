"""Completions and man pages are generated from the CLI and committed: regenerating them
must give the committed files, byte for byte."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import LOCALQUEUE, REPO

REGENERATE = "python scripts/regen.py"


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("regen")
    env_without_date = {
        k: v for k, v in __import__("os").environ.items() if k != "SOURCE_DATE_EPOCH"
    }
    subprocess.run(
        [sys.executable, str(REPO / "scripts" / "regen.py"), "--out", str(out)],
        env=env_without_date,
        check=True,
        capture_output=True,
        timeout=120,
    )
    return out


def generated_files(root: Path) -> set[str]:
    paths = [*root.glob("completions/*"), *root.glob("man/*.1")]
    paths += root.glob("localqueue/cli/completion_tree.json")
    return {str(path.relative_to(root)) for path in paths}


def test_committed_files_match_a_fresh_generation(regenerated):
    fresh = generated_files(regenerated)
    committed = generated_files(REPO)
    assert fresh == committed, f"generated files differ; regenerate with: {REGENERATE}"
    stale = [
        path
        for path in sorted(fresh)
        if (regenerated / path).read_bytes() != (REPO / path).read_bytes()
    ]
    assert not stale, f"stale generated files {stale}; regenerate with: {REGENERATE}"


def test_every_command_has_a_man_page(regenerated):
    import json

    tree = json.loads((REPO / "localqueue/cli/completion_tree.json").read_text())
    pages = {"-".join(["localqueue", *path.split()]) + ".1" for path in tree}
    assert {p.name for p in (REPO / "man").glob("*.1")} == pages
    assert {"localqueue-queue-add.1", "localqueue-store-vacuum.1"} <= pages


def test_regeneration_is_reproducible_and_dated_by_source_date_epoch(regenerated, tmp_path):
    out = tmp_path / "again"
    env = dict(__import__("os").environ, SOURCE_DATE_EPOCH="1700000000")
    subprocess.run(
        [sys.executable, str(REPO / "scripts" / "regen.py"), "--out", str(out)],
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    page = (out / "man" / "localqueue.1").read_text()
    assert '"2023-11-14"' in page.splitlines()[1]
    # only the date line differs
    fresh = (regenerated / "man" / "localqueue.1").read_text().splitlines()
    assert [a == b for a, b in zip(fresh, page.splitlines(), strict=True)].count(False) == 1
    assert (out / "completions" / "_localqueue").read_bytes() == (
        regenerated / "completions" / "_localqueue"
    ).read_bytes()


def test_check_mode_names_the_regenerate_command(tmp_path):
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "regen.py"), "--check", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert "stale: man/localqueue.1" in result.stderr
    assert REGENERATE in result.stderr


@pytest.mark.parametrize(
    ("shell", "script"),
    [("bash", "localqueue.bash"), ("zsh", "_localqueue"), ("fish", "localqueue.fish")],
)
def test_the_program_prints_the_committed_script(shell, script, env):
    """`eval "$(_LOCALQUEUE_COMPLETE=source_bash localqueue)"` loads the shipped script."""
    result = subprocess.run(
        [LOCALQUEUE],
        env=dict(env, _LOCALQUEUE_COMPLETE=f"source_{shell}"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == (REPO / "completions" / script).read_text()


def test_every_queue_argument_completes_queue_names_and_ids():
    """Arguments declared with options.queue_name() / message_id() are marked in the tree."""
    import json

    tree = json.loads((REPO / "localqueue/cli/completion_tree.json").read_text())
    for command in tree["queue"]["commands"]:
        arguments = tree[f"queue {command}"]["arguments"]
        assert arguments[:1] == ([] if command == "list" else ["queue"]), command
    ids = {path for path, node in tree.items() if "id" in node["arguments"]}
    assert ids == {
        "queue inspect",
        "queue ack",
        "queue release",
        "queue requeue-dead",
        "queue log",
    }
