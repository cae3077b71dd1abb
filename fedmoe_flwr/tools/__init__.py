"""The user's tools: the ``fedmoe`` command (inspect, export, ask, route-eval), run.sh help."""
