"""Write (or check) the configuration reference: pyproject's run-config table and the docs page.

python scripts/config_reference.py          # rewrite both from the code
python scripts/config_reference.py --check  # exit 1 if either differs (a test runs this)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import strategies  # noqa: E402, F401  (registers the built-in strategies)
from fedmoe_flwr.reference import markdown, pyproject_table, sections, splice  # noqa: E402
from fedmoe_flwr.server.policy import registered  # noqa: E402

PYPROJECT = ROOT / "pyproject.toml"
DOC = ROOT / "docs" / "configuration.md"


def expected() -> dict[Path, str]:
    """Each generated file's content as the code declares it."""
    blocks = sections(list(registered().values()))
    return {PYPROJECT: splice(PYPROJECT.read_text(), pyproject_table(blocks)),
            DOC: markdown(blocks)}


def main() -> int:
    """Write the files, or with --check report which differ."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 on drift")
    args = parser.parse_args()
    stale = [p for p, text in expected().items() if not p.exists() or p.read_text() != text]
    if args.check:
        for p in stale:
            print(f"{p.relative_to(ROOT)} differs from the code: run "
                  f"python scripts/config_reference.py", file=sys.stderr)
        return 1 if stale else 0
    for p, text in expected().items():
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
