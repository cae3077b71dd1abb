r"""``fedmoe deploy``: run the federation across machines, secure by default.

Certificates, SuperNode keys, and start / stop / status of a SuperLink and of
SuperNodes with their warm workers (pid files + log files), with TLS and
SuperNode authentication unless ``--insecure``.  Pure Python (``cryptography``,
``psutil``, ``urllib``), so the same commands work on Linux, macOS and Windows;
``scripts/deploy.sh`` runs it from the project's environment.  See
docs/deployment.md.

::

    machine A:  fedmoe deploy certs coordinator.example.org 10.0.0.5 [--force]
                fedmoe deploy superlink start [--insecure] [--host ADDR]
    machine B:  fedmoe deploy key sql-node              # then copy keys/sql-node.pub to A
    machine A:  fedmoe deploy register sql-node.pub
    machine B:  fedmoe deploy supernode start sql-node --superlink 10.0.0.5:8000 \
                  --ca ca.crt --specialty sql_expert --data /data/sql.jsonl \
                  [--speed F] [--model-source S] [--port P] [--insecure] [--cold]
    machine A:  fedmoe deploy submit [flwr run arguments]  # flwr run . fedmoe --stream
                fedmoe deploy status | stop-all | superlink stop | supernode stop NAME|--all

State lives in ``$FEDMOE_DEPLOY`` (default ``.fedmoe/deploy``): certs/, keys/,
pids/, logs/, secrets/, flwr-home/ (the ``flwr`` CLI's connection "fedmoe"),
superlink.db (registered keys).  ``FEDMOE_SUPERLINK_PORT`` (8000) and
``FEDMOE_SUPERLINK_HOST`` set the SuperLink's port and bind address; ``FORCE=1``
lets ``certs`` replace an existing set.  Relative paths resolve against the
working directory.  Every argument is checked before anything is written or
started; a bad one is a ``deploy: error:`` line and exit status 2.
"""

from fedmoe_flwr.tools.deploy.cli import main

__all__ = ["main"]
