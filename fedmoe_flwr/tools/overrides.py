"""Merge several ``--run-config`` values into one TOML file for ``flwr run``.

flwr 1.41 keeps only the last ``--run-config`` it is given, so
``--run-config conf/fedavg.toml --run-config "run.duration=30"`` would silently
drop the preset.  ``scripts/run.sh`` passes every value through this module
instead (TOML files and ``"k=v k2='text'"`` strings, later ones win) and
hands flwr the single merged file.

Usage: ``python -m fedmoe_flwr.tools.overrides OUT.toml VALUE [VALUE ...]``
"""

from __future__ import annotations

import json
import re
import sys
import tomllib
from pathlib import Path
from typing import Any

from fedmoe_flwr.config import ConfigError

_PAIR = re.compile(r"""\s*([^=\s]+)\s*=\s*('[^']*'|"(?:[^"\\]|\\.)*"|\S+)""")


def _flatten(prefix: str, table: dict[str, Any], out: dict[str, Any]) -> None:
    for key, value in table.items():
        if isinstance(value, dict):
            _flatten(f"{prefix}{key}.", value, out)
        else:
            out[f"{prefix}{key}"] = value


def parse_value(value: str) -> dict[str, Any]:
    """One ``--run-config`` value: a TOML file path, or ``k=v`` pairs."""
    path = Path(value)
    if value.endswith(".toml"):
        if not path.exists():
            raise ConfigError(f"--run-config file {value} does not exist")
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"--run-config file {value}: {err}") from None
        out: dict[str, Any] = {}
        _flatten("", data, out)
        return out
    out = {}
    pos = 0
    for match in _PAIR.finditer(value):
        if value[pos:match.start()].strip():
            break
        key, raw = match.group(1), match.group(2)
        try:
            out[key] = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            raise ConfigError(f"--run-config value for {key!r} is not a TOML value: {raw} "
                              f"(quote strings: {key}='text')") from None
        pos = match.end()
    if value[pos:].strip():
        raise ConfigError(f"--run-config {value!r}: cannot parse {value[pos:].strip()!r}; "
                          f"use key=value pairs separated by spaces, or a .toml file")
    return out


def merge(values: list[str]) -> dict[str, Any]:
    """All values merged in order (later keys win)."""
    merged: dict[str, Any] = {}
    for value in values:
        merged.update(parse_value(value))
    return merged


def to_toml(flat: dict[str, Any]) -> str:
    """Flat dotted keys as TOML (quoted keys; JSON strings are valid TOML basic strings)."""
    lines = []
    for key, value in flat.items():
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, (int, float)):
            text = repr(value)
        elif isinstance(value, str):
            text = json.dumps(value)
        else:
            raise ConfigError(f"run config key {key!r}: unsupported value {value!r}")
        lines.append(f"{json.dumps(key)} = {text}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write the merged overrides of ``argv[1:]`` to ``argv[0]``."""
    args = sys.argv[1:] if argv is None else argv
    if not args:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        Path(args[0]).write_text(to_toml(merge(args[1:])), encoding="utf-8")
    except ConfigError as err:
        print(f"run.sh: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
