"""Merge several ``--run-config`` values into one TOML file for ``flwr run``.

flwr 1.41 keeps only the last ``--run-config`` it is given, so
``--run-config conf/fedavg.toml --run-config "run.duration=30"`` would silently
drop the preset.  The run script passes every value through this module
instead (TOML files and ``"k=v k2='text'"`` strings, later ones win) and hands
flwr the single merged file.  Each value is parsed by Flower's own
``parse_config_args``, exactly as ``flwr run`` would parse it, and the result
is written with ``tomli_w``; this module only adds what Flower does not do:
refusing text that is not a ``key=value`` pair (Flower skips it silently) and
naming the pair that is not a TOML value.

Usage: ``python -m fedmoe_flwr.tools.overrides OUT.toml VALUE [VALUE ...]``
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path
from typing import Any

import tomli_w
from flwr.common.config import parse_config_args

from fedmoe_flwr.config import ConfigError

_PAIR = re.compile(r"(\S+?)=('[^']*'|\"[^\"]*\"|\S+)")  # the pairs parse_config_args finds


def parse_value(value: str) -> dict[str, Any]:
    """One ``--run-config`` value: a TOML file path, or ``k=v`` pairs."""
    if value.endswith(".toml"):
        if not Path(value).expanduser().exists():
            raise ConfigError(f"--run-config file {value} does not exist")
        try:
            return dict(parse_config_args([value]))
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"--run-config file {value}: {err}") from None
    leftover = _PAIR.sub(" ", value).strip()
    if leftover:
        raise ConfigError(f"--run-config {value!r}: cannot parse {leftover!r}; use key=value "
                          f"pairs separated by spaces, or a .toml file")
    for key, raw in _PAIR.findall(value):
        try:
            tomllib.loads(f"v = {raw}")
        except tomllib.TOMLDecodeError:
            raise ConfigError(f"--run-config value for {key!r} is not a TOML value: {raw} "
                              f"(quote strings: {key}='text')") from None
    return dict(parse_config_args([value]))


def merge(values: list[str]) -> dict[str, Any]:
    """All values merged in order (later keys win)."""
    merged: dict[str, Any] = {}
    for value in values:
        merged.update(parse_value(value))
    return merged


def to_toml(flat: dict[str, Any]) -> str:
    """Flat dotted keys as TOML (each key quoted, so flwr reads it back flat)."""
    return tomli_w.dumps(flat)


def main(argv: list[str] | None = None) -> int:
    """Write the merged overrides of ``argv[1:]`` to ``argv[0]``."""
    args = sys.argv[1:] if argv is None else argv
    if not args:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        Path(args[0]).write_text(to_toml(merge(args[1:])), encoding="utf-8")
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
