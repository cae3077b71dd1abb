"""Shared fixtures: an isolated model cache so tests never touch ~/.cache, and the
flattened run config of pyproject.toml."""

import os
import tomllib
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


@pytest.fixture(scope="session")
def pyproject_config() -> dict:
    """``[tool.flwr.app.config]`` of pyproject.toml as the flat mapping flwr hands the apps."""
    conf = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["flwr"]["app"]["config"]
    flat = {}

    def walk(prefix, d):
        for k, v in d.items():
            if isinstance(v, dict):
                walk(f"{prefix}{k}.", v)
            else:
                flat[f"{prefix}{k}"] = v

    walk("", conf)
    return flat
