"""The user's tools: the ``fedmoe`` command (inspect, export, ask, route-eval) and helpers."""
