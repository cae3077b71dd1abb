"""Shared fixtures: an isolated model cache so tests never touch ~/.cache."""

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    """Build qwen2-tiny once per session into a private cache (or reuse FEDMOE_CACHE)."""
    if "FEDMOE_CACHE" not in os.environ:
        os.environ["FEDMOE_CACHE"] = str(tmp_path_factory.mktemp("fedmoe-cache"))
    os.chdir(ROOT)
    yield
