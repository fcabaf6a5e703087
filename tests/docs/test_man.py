"""The man pages: valid roff (no groff warnings), rendered by man(1), with the sections and
facts a user looks for."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from localqueue import config
from localqueue.cli import exit_codes

from .conftest import REPO, needs

PAGES = sorted((REPO / "man").glob("*.1"))
SECTIONS = ["NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "EXIT STATUS", "ENVIRONMENT"]
SECTIONS += ["FILES", "EXAMPLES", "SEE ALSO"]


def test_there_is_a_page_per_command():
    names = {page.name for page in PAGES}
    assert "localqueue.1" in names
    assert "localqueue-queue-exec.1" in names
    assert len(names) >= 20


@needs("groff")
def test_groff_reports_no_warnings():
    for page in PAGES:
        result = subprocess.run(
            ["groff", "-man", "-ww", "-z", str(page)], capture_output=True, text=True
        )
        assert result.returncode == 0 and result.stderr == "", f"{page.name}: {result.stderr}"


@needs("man")
def test_man_renders_the_exec_page(env):
    result = subprocess.run(
        ["man", "-l", "-P", "cat", str(REPO / "man" / "localqueue-queue-exec.1")],
        env=dict(env, MANWIDTH="100", MANPAGER="cat"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    text = result.stdout
    for section in SECTIONS:
        assert re.search(rf"^{section}$", text, re.M), section
    assert "localqueue queue exec [OPTIONS] NAME -- CMD [ARGS...]" in text
    assert "LOCALQUEUE_MESSAGE_ID" in text
    assert "--forever" in text


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_sections_exit_codes_and_environment(page: Path):
    text = page.read_text()
    assert [s for s in SECTIONS if f".SH {s}\n" not in text and f'.SH "{s}"\n' not in text] == []
    exit_status = text.split(".SH EXIT STATUS\n")[1].split(".SH ")[0]
    codes = {int(code) for code in re.findall(r"^\.B (\d+)$", exit_status, re.M)}
    spec = {0, 1, 2, 3, 4, 5, 6, 7, 65, 75, 130}
    named = {v for k, v in vars(exit_codes).items() if k.isupper() and isinstance(v, int)}
    assert codes == spec == named
    environment = text.split(".SH ENVIRONMENT\n")[1].split(".SH ")[0]
    for setting in config.SETTINGS.values():
        assert setting.env in environment
    for name in ("LOCALQUEUE_CONFIG", "XDG_CONFIG_HOME", "NO_COLOR", "LOCALQUEUE_DEBUG"):
        assert name in environment
    assert re.search(r'^\.TH "[A-Z\\-]+" "1" "\d{4}-\d\d-\d\d" "localqueue ', text, re.M)
