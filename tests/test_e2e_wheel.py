"""Packaging end to end: a wheel of the project, installed into a fresh environment, builds the
embedded model without the app's data and runs `fedmoe run` (flwr run) in a copy of the app."""

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.slow, pytest.mark.e2e]


def _app_files() -> list[str]:
    out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout.split("\n")
    return [f for f in out if f and (ROOT / f).is_file()]


@pytest.fixture(scope="module")
def wheel_env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wheel")
    app = tmp / "app"  # a copy of the app: built there (setuptools writes build/ in-tree)
    for rel in _app_files():
        (app / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, app / rel)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(tmp / "dist"), str(app)], check=True, timeout=600)
    shutil.rmtree(app / "build", ignore_errors=True)
    wheel = next((tmp / "dist").glob("fedmoe_flwr-*.whl"))
    subprocess.run([sys.executable, "-m", "venv", str(tmp / "venv")], check=True, timeout=300)
    py = tmp / "venv" / ("Scripts" if os.name == "nt" else "bin") / "python"
    # The dependencies come from this environment (a path, not a site dir: its editable
    # install of the project is not activated); the project itself only from the wheel.
    site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig."
                                "get_paths()['purelib'])"], capture_output=True, text=True,
                               check=True).stdout.strip())
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-index",
                    str(wheel)], check=True, timeout=300)
    return tmp, wheel, py


def test_the_wheel_carries_the_tokenizer_and_builds_qwen2_tiny_without_data(wheel_env):
    tmp, wheel, py = wheel_env
    names = zipfile.ZipFile(wheel).namelist()
    assert "fedmoe_flwr/node/assets/qwen2-tiny-tokenizer.json" in names
    assert "client_app.py" in names and "strategies/__init__.py" in names
    assert not any(n.startswith("data/") for n in names)
    nowhere = tmp / "empty"
    nowhere.mkdir()
    code = ("import fedmoe_flwr, json; from fedmoe_flwr.node.tiny_model import "
            "ensure_tiny_model; print(json.dumps([fedmoe_flwr.__file__, "
            "str(ensure_tiny_model())]))")
    env = {**os.environ, "FEDMOE_CACHE": str(tmp / "cache")}
    out = subprocess.run([str(py), "-c", code], cwd=nowhere, env=env, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    package, model = json.loads(out.stdout.strip().splitlines()[-1])
    assert str(tmp / "venv") in package  # the wheel's copy, not the checkout
    assert (Path(model) / "config.json").is_file()


def test_fedmoe_run_from_the_wheel_trains_in_a_copy_of_the_app(wheel_env):
    tmp, _, py = wheel_env
    app = tmp / "app"
    fedmoe = py.parent / "fedmoe"
    env = {**os.environ, "PATH": f"{py.parent}{os.pathsep}{os.environ['PATH']}",
           "FEDMOE_STATE": str(tmp / "state")}
    proc = subprocess.run(
        [str(fedmoe), "run", "--nodes", "3", "--run-config",
         "run.duration=900 run.max-updates=3 train.sync-interval=2 run.name='w' "
         "eval.every-s=0"],  # ends on the third merged update; the duration bounds a hang
        cwd=app, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    summary = json.loads((app / "outputs" / "w" / "summary.json").read_text())
    assert summary["updates"] >= 3 and set(summary["experts"]) == {
        "python_expert", "sql_expert", "docs_expert"}
