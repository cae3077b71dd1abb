"""The house rules: config declared once and generated into pyproject and the docs, a server
without torch, a library that never imports its plugins, math without wire code, and small
classes and functions everywhere."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from fedmoe_flwr.config import config_fields, default_run_config, field_default, section_fields

ROOT = Path(__file__).resolve().parents[1]


def test_pyproject_and_the_configuration_reference_are_generated_from_the_code():
    # pyproject's [tool.flwr.app.config] lists every key (Flower refuses --run-config keys it
    # lacks) and docs/configuration.md documents them: both must be what the code declares.
    proc = subprocess.run([sys.executable, "scripts/config_reference.py", "--check"], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_every_pyproject_key_and_default_equals_the_code(pyproject_config):
    import strategies

    declared = default_run_config()  # the built-in strategies' keys (tests register more)
    for cls in (getattr(strategies, name) for name in strategies.__all__):
        declared.update({f.metadata["key"]: field_default(f) for f in section_fields(cls.Params)})
    assert pyproject_config == declared


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


HOUSE = [*sorted((ROOT / "strategies").glob("*.py")),
         *sorted((ROOT / "fedmoe_flwr").rglob("*.py")),
         ROOT / "server_app.py", ROOT / "client_app.py"]
# The size rules hold for the benchmarks and scripts too (people read and change them).
SIZED = [*HOUSE, *sorted((ROOT / "bench").glob("*.py")),
         *sorted((ROOT / "scripts").glob("*.py")), *sorted((ROOT / "data").glob("*.py"))]


def _imports(path: Path) -> set[str]:
    """Every module a file imports (absolute names; relative ones resolved)."""
    tree = ast.parse(path.read_text())
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                out.add(".".join(base + ([node.module] if node.module else [])))
            else:
                out.add(node.module or "")
    return out


def test_the_library_never_imports_its_plugins_and_the_math_no_wire_code():
    library = sorted((ROOT / "fedmoe_flwr").rglob("*.py"))
    assert library
    for path in library:
        bad = {m for m in _imports(path) if m == "strategies" or m.startswith("strategies.")}
        assert not bad, f"{path.relative_to(ROOT)} imports {bad}: the port lives in the library"
    wire = ("fedmoe_flwr.wire", "fedmoe_flwr.codec", "fedmoe_flwr.contract", "flwr")
    for path in sorted((ROOT / "fedmoe_flwr" / "merge").glob("*.py")):
        bad = {m for m in _imports(path) if m.startswith(wire)}
        assert not bad, f"{path.relative_to(ROOT)} imports wire code {bad}"


def test_the_import_checker_sees_what_it_must_refuse(tmp_path, monkeypatch):
    # The rule above must be able to fail: a file that imports strategies is caught.
    sneaky = ROOT / "fedmoe_flwr" / "_sneaky_test_module.py"
    sneaky.write_text("from strategies.fedasync import FedAsync  # noqa\n")
    try:
        with pytest.raises(AssertionError, match="_sneaky_test_module"):
            test_the_library_never_imports_its_plugins_and_the_math_no_wire_code()
    finally:
        sneaky.unlink()


@pytest.mark.parametrize("path", SIZED, ids=lambda p: str(p.relative_to(ROOT)))
def test_classes_and_functions_stay_small(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if not isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        lines = node.end_lineno - node.lineno + 1
        if isinstance(node, ast.ClassDef):
            assert lines <= 200, f"{path.name}: class {node.name} has {lines} lines"
        else:
            assert lines <= 60, f"{path.name}: {node.name}() has {lines} lines"
