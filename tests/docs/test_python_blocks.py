"""Every ```python block of README.md and docs/*.md runs as written.

The blocks of one page run in order, in one namespace and one fresh working directory
(the blocks use ``./`` store paths), like a session at the prompt: a later block may use a
message an earlier one put. ``send_email`` and ``deliver``, which the blocks leave to the
reader, are stubs that record what they were given. tests/test_worker_readme.py checks
what the main snippets do in more detail."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .conftest import REPO

BLOCK = re.compile(r"```python\n(.*?)```", re.S)
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def test_the_python_api_and_retry_pages_have_blocks():
    found = {page.name for page in PAGES if BLOCK.search(page.read_text())}
    assert {"python.md", "retry.md"} <= found


@pytest.mark.parametrize(
    "page",
    [page for page in PAGES if BLOCK.search(page.read_text())],
    ids=lambda page: page.name,
)
def test_python_blocks_run(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    sent: list[str] = []
    namespace = {
        "__name__": f"docs_{page.stem}",
        "send_email": sent.append,
        "deliver": sent.append,
    }
    for number, block in enumerate(BLOCK.findall(page.read_text()), 1):
        code = compile(block, f"{page.name}, python block {number}", "exec")
        exec(code, namespace)
    if page.name == "python.md":  # the queue's own loop, then the decorator and the engine
        assert sorted(sent) == ["a@b.c", "d@e.f", "g@h.i", "user@example.com"]
        assert namespace["queue"].stats().total == 0
