"""Quiet by default: this project's lines and none of the libraries' known noise;
``FEDMOE_LOG_LEVEL=DEBUG`` (``fedmoe --verbose``) brings it back.

The end-to-end check (a real simulation and ``fedmoe route-eval`` print the update lines,
the tables and none of :data:`NOISE`) shares its run with the no-bash test:
``tests/test_no_bash.py::test_fedmoe_run_without_bash_or_symlinks_prints_only_the_project_lines``."""

import os
import re
import subprocess
import sys
from pathlib import Path

from fedmoe_flwr.logs import QUIET_ENV

ROOT = Path(__file__).resolve().parents[1]
# What people saw before (bash scripts/run.sh, fedmoe route-eval / ask), one pattern each.
NOISE = {
    "bitsandbytes kernels": r"Failed to load CPU gemm_4bit_forward|No module named 'kernels'",
    "gradient checkpointing": r"is_gradient_checkpointing",
    "torch.jit": r"torch\.jit",
    "progress bar": r"Loading weights|Converting and de-quantizing GGUF|Writing model shards"
                    r"|\d+it/s\]|\|█",
    "int8 casts": r"MatMul8bitLt",
    "ray dedup": r"Ray deduplicates logs|repeated \d+x across cluster",
    "warning source line": r"^\s*warnings\.warn\(",
}
def noise(text: str) -> dict[str, list[str]]:
    found = {}
    for name, pattern in NOISE.items():
        lines = [line for line in text.splitlines() if re.search(pattern, line)]
        if lines:
            found[name] = lines[:3]
    return found


def _in_child(code: str, **env: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter: logging and warnings setup is per process."""
    base = {k: v for k, v in os.environ.items() if k not in QUIET_ENV and k != "FEDMOE_LOG_LEVEL"}
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          env={**base, **env}, timeout=120)


def test_debug_level_shows_everything_and_is_passed_on():
    code = ("import logging, os; from fedmoe_flwr.logs import setup_logging; "
            "setup_logging(verbose=True); "
            "print(os.environ['FEDMOE_LOG_LEVEL'], 'TQDM_DISABLE' in os.environ, "
            "logging.getLogger('fedmoe').level, logging.getLogger('bitsandbytes').level)")
    assert _in_child(code).stdout.split() == ["DEBUG", "False", "10", "0"]
    code = ("import logging, os; from fedmoe_flwr.logs import setup_logging; setup_logging(); "
            "print(os.environ['RAY_DEDUP_LOGS'], os.environ['TQDM_DISABLE'], "
            "logging.getLogger('fedmoe').level, logging.getLogger('bitsandbytes').level)")
    # A user's own RAY_DEDUP_LOGS wins; FEDMOE_LOG_LEVEL sets our loggers' level.
    assert _in_child(code, RAY_DEDUP_LOGS="1", FEDMOE_LOG_LEVEL="WARNING").stdout.split() == [
        "1", "1", "30", "40"]
    code = ("import warnings; from fedmoe_flwr.logs import setup_logging; setup_logging(); "
            "warnings.warn('`is_gradient_checkpointing` is deprecated', FutureWarning)")
    assert "is_gradient_checkpointing" in _in_child(code, FEDMOE_LOG_LEVEL="DEBUG").stderr


def test_quiet_filters_are_scoped_to_the_known_messages():
    code = ("import warnings, logging; from fedmoe_flwr.logs import setup_logging; "
            "setup_logging(); "
            "warnings.warn('`is_gradient_checkpointing` is deprecated', FutureWarning); "
            "warnings.warn('`torch.jit.script_method` is deprecated.', FutureWarning); "
            "warnings.warn('something new', FutureWarning); "
            "logging.getLogger('bitsandbytes.cextension').warning('kernels missing'); "
            "logging.getLogger('bitsandbytes.cextension').error('a real error')")
    proc = _in_child(code)
    assert "something new" in proc.stderr and "a real error" in proc.stderr
    assert "is_gradient_checkpointing" not in proc.stderr and "torch.jit" not in proc.stderr
    assert "kernels missing" not in proc.stderr
