"""``fedmoe console``: a live web page of a run, read from its run directory.

It follows ``metrics.jsonl`` as the run writes it (only the new bytes on each
poll) and the checkpoints' ``meta.json``, and shows the nodes, the experts,
the gateway, the server's load, the bytes per update and the rejected
updates.  Every asset is served by the package (``fedmoe_flwr/tools/static``),
so it works offline.  See ``docs/console.md``.

Three entry points for the integrator:

- :func:`create_console_app` -- a FastAPI app that is only the console;
- :func:`mount_console` -- the console under ``/console`` of an existing app;
- :func:`console_main` -- the ``fedmoe console`` command.
"""

from fedmoe_flwr.tools.console.app import create_console_app, is_public_console_path, mount_console
from fedmoe_flwr.tools.console.command import console_main

__all__ = ["console_main", "create_console_app", "is_public_console_path", "mount_console"]
