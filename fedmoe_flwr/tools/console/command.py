"""``fedmoe console [RUN_DIR] [--host H] [--port P] [--api-key KEY]``: serve the live page."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from fedmoe_flwr.server.rundir import DEFAULT_RUN_DIR, RunDirError, follow
from fedmoe_flwr.tools.limits import SettingError, check_listen

DEFAULT_PORT = 8050
KEY_ENV = "FEDMOE_API_KEY"  # the same variable ``fedmoe serve`` reads


class ConsoleSettingError(ValueError):
    """A console setting that could never work (checked before anything starts)."""


def build_parser() -> argparse.ArgumentParser:
    """The arguments of ``fedmoe console``."""
    ap = argparse.ArgumentParser(prog="fedmoe console", description="A live web page of a "
                                 "run: nodes, experts, gateway, server load, rejected updates.")
    ap.add_argument("run_dir", nargs="?", default=None,
                    help="run directory (default: outputs/latest, followed to each new run)")
    ap.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    ap.add_argument("--port", default=str(DEFAULT_PORT),
                    help=f"port to listen on, 1-65535 (default: {DEFAULT_PORT})")
    ap.add_argument("--api-key", default=None, help="require 'Authorization: Bearer KEY' for "
                    f"the run's data (default: ${KEY_ENV})")
    return ap


def check_settings(port: str, api_key: str | None, run_dir: Path, given: bool) -> int:
    """The port as a number; refuse a bad port, a key with spaces, a RUN_DIR that is not there.

    Why here: a typo should fail in a second with one line, not after the
    server started (or, for a key with a space, never match any request).
    """
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ConsoleSettingError(f"--port must be a whole number in [1, 65535], got {port!r}")
    if api_key is not None and (not api_key or any(c.isspace() or not c.isprintable()
                                                   for c in api_key)):
        raise ConsoleSettingError(f"the API key (--api-key / {KEY_ENV}) must be printable text "
                                  f"without spaces: the page sends it as 'Authorization: Bearer "
                                  f"KEY'")
    try:
        root = follow(run_dir)
    except RunDirError as err:
        raise ConsoleSettingError(str(err)) from None
    if root is None or not root.is_dir():
        hint = ("check the path (run directories are under run.output-dir)" if given
                else "start a run first, or pass RUN_DIR")
        raise ConsoleSettingError(f"run directory {run_dir} does not exist; {hint}")
    return int(port)


def console_main(argv: Sequence[str]) -> int:
    """Run ``fedmoe console`` with ``argv`` (without the word ``console``); the exit status.

    Serves until interrupted; 2 with one ``fedmoe: error:`` line for a bad setting.
    """
    try:
        args = build_parser().parse_args(list(argv))
    except SystemExit as stop:  # --help (0) or a usage error (2, already printed)
        return int(stop.code or 0)
    key = args.api_key if args.api_key is not None else os.environ.get(KEY_ENV)
    run_dir = Path(args.run_dir) if args.run_dir else DEFAULT_RUN_DIR
    try:
        port = check_settings(args.port, key, run_dir, args.run_dir is not None)
        check_listen(args.host, port)  # before the address is printed: uvicorn fails after it
    except (ConsoleSettingError, SettingError) as err:
        print(f"fedmoe: error: {err}", file=sys.stderr)
        return 2
    import uvicorn

    from fedmoe_flwr.tools.console.app import create_console_app

    app = create_console_app(run_dir, key)
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"fedmoe console: {run_dir} on http://{host}:{port}/console/ "
          + ("(API key required: add ?key=KEY to the address once, or type it in the page)"
             if key else "(no API key)"), flush=True)
    uvicorn.run(app, host=args.host, port=port, log_level="warning")
    return 0
