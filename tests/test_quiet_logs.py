"""Quiet by default: a real simulation and ``fedmoe route-eval`` print this project's lines
(updates, load, tables) and none of the libraries' known noise; ``FEDMOE_LOG_LEVEL=DEBUG``
brings it back."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from fedmoe_flwr.logs import QUIET_ENV

ROOT = Path(__file__).resolve().parents[1]
FEDMOE = Path(sys.executable).parent / "fedmoe"
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
def _noise(text: str) -> dict[str, list[str]]:
    found = {}
    for name, pattern in NOISE.items():
        lines = [line for line in text.splitlines() if re.search(pattern, line)]
        if lines:
            found[name] = lines[:3]
    return found


def _fedmoe(*args, env, timeout=900):
    return subprocess.run([str(FEDMOE), *(str(a) for a in args)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_a_run_and_route_eval_print_only_the_project_lines(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in QUIET_ENV and k != "FEDMOE_LOG_LEVEL"}
    env["FEDMOE_STATE"] = str(tmp_path / "state")
    config = (f"run.duration=5 train.sync-interval=2 run.name='quiet' "
              f"run.output-dir='{tmp_path}/out'")
    proc = subprocess.run(["bash", "scripts/run.sh", "--run-config", config], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=900)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert _noise(out) == {}, out[-6000:]
    assert re.search(r"tau=\d+\s+a=[\d.]+ .*loss [\d.]+", out), out[-3000:]  # update lines
    assert "results:" in out and "registered" in out
    run = tmp_path / "out" / "quiet"
    files = [f"data/eval/{d}.jsonl" for d in ("python", "sql", "docs")]
    routed = _fedmoe("route-eval", run, *files, env=env)  # every router; loss loads the model
    out = routed.stdout + routed.stderr
    assert routed.returncode == 0, out[-4000:]
    assert _noise(out) == {}, out[-6000:]
    assert "routing accuracy (top-1)" in out and "loss" in out and "ngrams" in out


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
