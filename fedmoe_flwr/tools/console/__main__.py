"""``python -m fedmoe_flwr.tools.console RUN_DIR ...``: ``fedmoe console`` before it is wired."""

import sys

from fedmoe_flwr.tools.console.command import console_main

raise SystemExit(console_main(sys.argv[1:]))
