"""Run Tenacity's own test suite against localqueue's persistent retryers.

Fetches the source release of the *installed* Tenacity with ``pip download --no-binary
:all: --no-deps`` (its tests are not part of this repository), rewrites only the test
files' ``import tenacity`` lines so that ``Retrying``, ``AsyncRetrying`` and ``retry``
resolve to ``PersistentRetrying``, ``PersistentAsyncRetrying`` and ``persistent_retry``
(``scripts/tenacity_shim.py``: a fresh key and a ``MemoryAttemptStore`` each), runs the
suite with pytest and reports how many passed. Exits 1 when fewer than ``--required``
pass; docs/retry.md lists the expected failures and why persistence causes
them.

    python scripts/tenacity_suite.py [--required N] [-- extra pytest args]
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from importlib.metadata import version
from pathlib import Path

SHIM = Path(__file__).with_name("tenacity_shim.py")
REQUIRED = 169  # of 179 (Tenacity 9.2.1); docs/retry.md lists the rest
# Whole-step bounds, so that a hang (a download that stalls, a test that never returns
# from a signal-proof wait) fails CI with a message instead of using up its time. The
# suite takes seconds and the download well under a minute.
DOWNLOAD_SECONDS = 600
SUITE_SECONDS = 600

# `import tenacity`, `from tenacity import (...)`, `from tenacity import asyncio as x`;
# submodule imports (`from tenacity.wait import ...`, `from tenacity import _utils`) stay.
_IMPORT = re.compile(r"^(\s*)import tenacity$", re.MULTILINE)
_FROM = re.compile(r"^(\s*)from tenacity import (?!_utils\b|tornadoweb\b)", re.MULTILINE)


def rewrite(source: str) -> str:
    source = _IMPORT.sub(r"\1import tenacity_shim as tenacity", source)
    return _FROM.sub(r"\1from tenacity_shim import ", source)


def fetch(into: Path) -> Path:
    installed = version("tenacity")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "-q",
            "--no-binary",
            ":all:",
            "--no-deps",
            f"tenacity=={installed}",
            "-d",
            str(into),
        ],
        check=True,
        timeout=DOWNLOAD_SECONDS,
    )
    (archive,) = into.glob("tenacity-*.tar.gz")
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    return into / f"tenacity-{installed}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--required", type=int, default=REQUIRED)
    parser.add_argument("pytest_args", nargs="*")
    options = parser.parse_args(argv)
    try:
        return _run(options)
    except subprocess.TimeoutExpired as late:
        if late.stdout:  # what the suite printed before it hung
            sys.stdout.write(late.stdout if isinstance(late.stdout, str) else late.stdout.decode())
        print(f"\ntenacity suite: gave up after {late.timeout:g} s: {late.cmd[2:5]}")
        return 1


def _run(options: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        release = fetch(Path(tmp))
        for test_file in (release / "tests").glob("*.py"):
            test_file.write_text(rewrite(test_file.read_text()))
        (release / "tests" / "tenacity_shim.py").write_text(SHIM.read_text())
        # The release's own package would shadow the installed one (same version).
        shutil.rmtree(release / "tenacity")
        pytest_run = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "tests",
                "-q",
                "-p",
                "no:cacheprovider",
                "-p",
                "no:xdist",
                "-o",
                "addopts=",
                "--timeout",
                "15",
                "--ignore",
                "tests/test_tornado.py",
                "--rootdir",
                str(release),
                "-c",
                str(release / "pyproject.toml"),
                *options.pytest_args,
            ],
            cwd=release,
            env=_env(release),
            check=False,
            capture_output=True,
            text=True,
            timeout=SUITE_SECONDS,
        )
        sys.stdout.write(pytest_run.stdout)
        sys.stderr.write(pytest_run.stderr)
        passed, failed = _count(pytest_run.stdout)
    print(f"tenacity suite: {passed} passed, {failed} failed (required: {options.required})")
    if pytest_run.returncode not in (0, 1) or passed < options.required:
        return 1
    return 0


def _env(release: Path) -> dict[str, str]:
    import os

    env = dict(os.environ)
    env["PYTHONPATH"] = str(release / "tests")
    return env


def _count(output: str) -> tuple[int, int]:
    """Passed and failed tests from pytest's summary line (subtests not counted)."""
    summary = output.strip().splitlines()[-1] if output.strip() else ""
    counts = {kind: int(n) for n, kind in re.findall(r"(\d+) (passed|failed|errors?)\b", summary)}
    failed = counts.get("failed", 0) + counts.get("error", 0) + counts.get("errors", 0)
    return counts.get("passed", 0), failed


if __name__ == "__main__":
    sys.exit(main())
