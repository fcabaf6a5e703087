"""Every ``curl`` we show makes an HTTP error a failed job.

``curl`` without ``--fail`` exits 0 on HTTP 500, so ``queue exec`` would ack the message
and it would be gone: every example uses ``-fsS`` (or ``--fail``/``--fail-with-body``)."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FAILS = re.compile(r"\s(?:-[a-zA-Z]*f[a-zA-Z]*|--fail|--fail-with-body)(?=\s|$)")


def _documents() -> list[Path]:
    docs = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    docs += sorted((REPO / "man").glob("*.1"))
    docs += sorted(p for p in (REPO / "examples").iterdir() if p.is_file())
    return docs


def _curl_commands(text: str) -> list[str]:
    """Each curl command line, its backslash continuations joined."""
    joined = re.sub(r"\\\n\s*", " ", text)
    return [m.group(0) for m in re.finditer(r"(?<![\w-])curl[ \t][^\n`|;]*", joined)]


def test_every_curl_shown_fails_on_an_http_error() -> None:
    found = {doc.name: _curl_commands(doc.read_text()) for doc in _documents()}
    assert found["README.md"], "the README's headline example runs curl"
    lax = {name: [c for c in cmds if not FAILS.search(c)] for name, cmds in found.items()}
    assert {name: cmds for name, cmds in lax.items() if cmds} == {}


def test_the_readme_says_why() -> None:
    readme = (REPO / "README.md").read_text()
    assert "without it curl\nexits 0, and the message would be acked and gone" in readme
