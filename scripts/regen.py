"""Regenerate everything generated from the CLI: completions, the completion tree and the
man pages.

    python scripts/regen.py              # rewrite them in this checkout
    python scripts/regen.py --out DIR    # write them under DIR instead (the drift test)
    python scripts/regen.py --check      # exit 1 and name the stale files; write nothing

The man pages' date comes from SOURCE_DATE_EPOCH (a fixed default otherwise), so the
output only changes when the CLI does.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

COMMAND = "python scripts/regen.py"


def render() -> dict[str, str]:
    """Every generated file: repository path -> text."""
    from scripts import gen_completions, gen_man

    return {**gen_completions.render(), **gen_man.render()}


def stale(files: dict[str, str], root: Path) -> list[str]:
    """Generated paths under ``root`` that differ from ``files`` or should not exist."""
    wrong = [p for p, text in files.items() if _read(root / p) != text]
    extra = [
        str(page.relative_to(root))
        for page in sorted((root / "man").glob("*.1"))
        if str(page.relative_to(root)) not in files
    ]
    return sorted(wrong + extra)


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO, help="root to write under")
    parser.add_argument("--check", action="store_true", help="only report stale files")
    args = parser.parse_args(argv)
    files = render()
    if args.check:
        wrong = stale(files, args.out)
        for path in wrong:
            print(f"stale: {path}", file=sys.stderr)
        if wrong:
            print(f"regenerate with: {COMMAND}", file=sys.stderr)
        return 1 if wrong else 0
    for page in (args.out / "man").glob("*.1"):  # pages of commands that are gone
        if str(page.relative_to(args.out)) not in files:
            page.unlink()
    for path, text in files.items():
        target = args.out / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    print(f"wrote {len(files)} files under {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
