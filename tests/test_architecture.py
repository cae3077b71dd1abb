"""The house rules: config declared once and equal to pyproject, a server without torch,
small classes and functions on the server side."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from fedmoe_flwr.config import config_fields, default_run_config

ROOT = Path(__file__).resolve().parents[1]


def test_every_pyproject_key_and_default_equals_the_code(pyproject_config):
    assert pyproject_config == default_run_config()


def test_every_key_has_help_and_numeric_keys_a_finite_range():
    for _, _, f in config_fields():
        meta = f.metadata
        assert meta["help"], meta["key"]
        if f.type in ("int", "float"):
            if meta["choices"]:
                continue
            assert (meta["ge"] is not None or meta["gt"] is not None) and \
                (meta["le"] is not None or meta["lt"] is not None), meta["key"]


def test_server_never_imports_torch_or_transformers():
    code = ("import sys; import server_app, strategies, fedmoe_flwr.server.loop, "
            "fedmoe_flwr.merge.gateway; "
            "print(sorted(m for m in ('torch', 'transformers', 'peft') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout.strip()
    assert out == "[]"


SERVER_SIDE = [*sorted((ROOT / "strategies").glob("*.py")),
               *sorted((ROOT / "fedmoe_flwr" / "server").glob("*.py")),
               *sorted((ROOT / "fedmoe_flwr" / "merge").glob("*.py")),
               ROOT / "server_app.py"]


@pytest.mark.parametrize("path", SERVER_SIDE, ids=lambda p: str(p.relative_to(ROOT)))
def test_server_side_classes_and_functions_stay_small(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if not isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        lines = node.end_lineno - node.lineno + 1
        if isinstance(node, ast.ClassDef):
            assert lines <= 200, f"{path.name}: class {node.name} has {lines} lines"
        else:
            assert lines <= 60, f"{path.name}: {node.name}() has {lines} lines"
