"""``python -m fedmoe_flwr.tools.deploy``: the same as ``fedmoe deploy``."""

from fedmoe_flwr.tools.deploy.cli import main

raise SystemExit(main())
