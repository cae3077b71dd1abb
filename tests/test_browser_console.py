"""The console in a real headless Chromium, following a run that is being written.

Chromium and its driver are Debian's (``scripts/browser.sh`` installs both with
apt-get when they are missing), driven by Selenium (pinned in requirements.lock)
through that local chromedriver: nothing is downloaded.  The run is written while
the page is open by the server's own :class:`RunDirectory` and event types, with
plausible numbers (a real federation would take minutes to show as much).  With
``FEDMOE_WRITE_SCREENSHOT=1`` the test saves ``docs/console.png``, the page of
that run in progress; otherwise its screenshot goes to the test's temp folder, so
a test run never changes a tracked file.
"""

import math
import os
import random
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from fedmoe_flwr import events as ev
from fedmoe_flwr.config import parse_run_config
from fedmoe_flwr.server.artifacts import RunDirectory
from fedmoe_flwr.tools.run import stop_tree

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path(os.environ.get("FEDMOE_CHROMIUM", "/usr/bin/chromium"))
DRIVER = Path(os.environ.get("FEDMOE_CHROMEDRIVER", "/usr/bin/chromedriver"))
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--window-size=1440,1000"]
EXPERTS = ("python_expert", "sql_expert", "docs_expert")
KEY = "console-test-key"


def _chromium() -> Path:
    """Chromium's path, installed with apt-get first when missing (skip only without apt)."""
    if CHROMIUM.exists() and DRIVER.exists():
        return CHROMIUM
    if shutil.which("bash") is None:
        pytest.skip("no bash to run scripts/browser.sh (install Chromium, set FEDMOE_CHROMIUM)")
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "browser.sh")], capture_output=True,
                          text=True, timeout=900)
    if proc.returncode == 3:
        pytest.skip(f"Chromium is missing and cannot be installed: {proc.stderr.strip()}")
    assert proc.returncode == 0 and CHROMIUM.exists() and DRIVER.exists(), \
        proc.stdout + proc.stderr
    return CHROMIUM


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(what, check, timeout=60.0, every=0.25):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(every)


class Page:
    """The page under test: Selenium's Chrome driver, plus the DevTools calls it passes on."""

    def __init__(self, profile: Path) -> None:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        options = webdriver.ChromeOptions()
        options.binary_location = str(_chromium())
        for flag in (*FLAGS, f"--user-data-dir={profile}"):
            options.add_argument(flag)
        service = Service(executable_path=str(DRIVER),
                          log_output=str(profile.parent / "chromedriver.log"))
        self.driver = webdriver.Chrome(options=options, service=service)
        self.driver.set_script_timeout(60)

    def call(self, method: str, **params):
        return self.driver.execute_cdp_cmd(method, params)

    def js(self, expression: str):
        return self.driver.execute_script(f"return ({expression});")

    def open(self, url: str) -> None:
        self.driver.get(url)  # returns once the document has loaded

    def close(self) -> None:
        self.driver.quit()  # the browser and its driver


# ------------------------------------------------------------------ a run being written

class LiveRun:
    """A run directory written the way the server writes it, with plausible numbers."""

    def __init__(self, root: Path) -> None:
        self.model = parse_run_config({}).model
        self.dir = RunDirectory(root, "20261202-101500-fedasync", self.model, keep_versions=2)
        self.t0 = time.time() - 95.0  # wall clock of elapsed 0: phase two ends about now
        self.rng = random.Random(7)
        self.versions = dict.fromkeys(EXPERTS, 0)
        self.updates = dict.fromkeys(EXPERTS, 0)
        self.stale = {e: {} for e in EXPERTS}
        self.base = {}  # node -> version it trains from
        self.nodes = {"1": "python_expert", "2": "sql_expert", "3": "docs_expert",
                      "4": "python_expert", "5": "sql_expert"}
        self.pace = {"1": 9.0, "2": 10.0, "3": 11.0, "4": 19.0, "5": 10.0}
        self.next_at = {n: p * self.rng.uniform(0.5, 1.0) for n, p in self.pace.items()}
        self.gateway = 0
        self.marks = [30.0, 60.0, 90.0]  # load windows and periodic evaluations
        self.strikes = 0
        self.lost: set[str] = set()

    def write(self, event) -> None:
        self.dir.events.write(event)

    def at(self, elapsed: float) -> float:
        return round(self.t0 + elapsed, 3)

    def loss(self, expert: str, t: float, own: bool = True) -> float:
        floor = {"python_expert": 0.62, "sql_expert": 0.48, "docs_expert": 0.71}[expert]
        value = floor + 2.3 * math.exp(-t / 38.0)
        return round(value if own else value + 0.9 + 0.2 * math.exp(-t / 60), 4)

    def start(self) -> None:
        for node, specialty in self.nodes.items():
            self.write(ev.Register(node=node, specialty=specialty, adapter=specialty,
                                   num_train=900 + 37 * int(node), device="cpu",
                                   time=self.at(-6 + int(node) * 0.2)))
        self.write(ev.Refused(node="6", reason="LoRA signature differs: r=16, this run r=8",
                              time=self.at(-4.5)))
        self.evaluate("initial", 0.0)
        self.write(ev.Start(strategy="fedasync", nodes=5, time=self.at(0)))
        for expert in EXPERTS:
            self.checkpoint(expert)
        self.checkpoint_gateway()

    def evaluate(self, tag: str, t: float) -> None:
        for domain in EXPERTS:
            losses = {a: self.loss(domain, t, own=a == domain) for a in EXPERTS}
            losses["gateway"] = round(losses[domain] + 0.18, 4)
            self.write(ev.Eval(tag=tag, domain=domain, elapsed=t, losses=losses,
                               time=self.at(t)))

    def checkpoint(self, expert: str) -> None:
        weights = {"base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight":
                   np.full((8, 64), 0.01 * (1 + self.versions[expert]), np.float32),
                   "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight":
                   np.zeros((64, 8), np.float32)}
        meta = {"specialty": expert, "version": self.versions[expert],
                "updates": self.updates[expert], "examples_seen": 64 * self.updates[expert],
                "nodes": sorted(n for n, s in self.nodes.items() if s == expert),
                "staleness_histogram": {str(k): v for k, v in
                                        sorted(self.stale[expert].items())}}
        self.dir.save_adapter(f"experts/{expert}", weights, self.versions[expert], meta)

    def checkpoint_gateway(self) -> None:
        total = sum(self.updates.values()) or 1
        coefficients = {e: (self.updates[e] or 1) / max(total, len(EXPERTS)) for e in EXPERTS}
        norm = sum(coefficients.values())
        weights = {"base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight":
                   np.full((24, 64), 0.01, np.float32),
                   "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight":
                   np.zeros((64, 24), np.float32)}
        meta = {"method": "cat", "version": self.gateway, "lora_r": 24, "lora_alpha": 48,
                "coefficients": {e: round(c / norm, 4) for e, c in coefficients.items()},
                "expert_versions": dict(self.versions),
                "eval_losses": {e: self.loss(e, self.gateway * 10.0) + 0.18 for e in EXPERTS}}
        self.dir.save_adapter("gateway", weights, self.gateway, meta, rank=24, alpha=48)
        self.gateway += 1

    def advance(self, until: float) -> None:
        """Every node's updates, the load windows and the evaluations up to ``until``."""
        while True:
            node = min(self.next_at, key=self.next_at.get)
            t = self.next_at[node]
            if t > until:
                return
            while self.marks and self.marks[0] <= t:
                self.load_window(self.marks.pop(0))
            self.next_at[node] = t + self.pace[node] * self.rng.uniform(0.85, 1.2)
            self.tick(node, t)  # may push its next time (lost, quarantined)

    def tick(self, node: str, t: float) -> None:
        expert = self.nodes[node]
        if node == "5" and t >= 40:
            self.write(ev.Rejected(adapter=expert, node=node, reason="outlier-norm",
                                   detail="its change is 7.9x the median of recent accepted "
                                          "changes (max 3.0)", time=self.at(t)))
            self.strikes += 1
            if self.strikes == 3:
                self.write(ev.Refused(node=node, reason="quarantined: 3 robust refusals "
                                                        "(outlier-norm)", time=self.at(t)))
                self.next_at[node] = 1e9
            return
        if node == "4" and t >= 55 and "4" not in self.lost:
            self.lost.add(node)
            self.write(ev.NodeError(node=node, message_kind="train", code=2,
                                    reason="message TTL expired", time=self.at(t)))
            self.next_at[node] = t + 45.0  # rejoins after the page was photographed
            return
        self.update(node, expert, t)

    def update(self, node: str, expert: str, t: float) -> None:
        base = self.base.get(node, self.versions[expert])
        staleness = self.versions[expert] - base
        self.versions[expert] += 1
        self.updates[expert] += 1
        self.stale[expert][staleness] = self.stale[expert].get(staleness, 0) + 1
        self.base[node] = self.versions[expert]
        noise = self.rng.uniform(-0.09, 0.09)
        self.write(ev.Version(adapter=expert, version=self.versions[expert], elapsed=t,
                              time=self.at(t)))
        self.write(ev.Update(
            elapsed=t, specialty=expert, adapter=expert, node=node, staleness=staleness,
            mixing=round(0.6 / (1 + staleness) ** 0.5, 3), applied=True,
            version=self.versions[expert], num_examples=64,
            train_loss=round(self.loss(expert, t) + 0.12 + noise, 4), steps=8, tokens=9800,
            train_seconds=self.pace[node] * 0.9, load_seconds=0.2, base_version=base,
            round_trip=self.pace[node] + 0.4, process_seconds=0.0, transfer_wait=0.15,
            server_seconds=0.012, bytes_out=1_712_000 + self.rng.randint(-900, 900),
            bytes_in=446_000 + self.rng.randint(-4000, 4000), backlog=self.rng.randint(0, 2),
            time=self.at(t)))
        self.checkpoint(expert)
        if self.updates[expert] % 3 == 0:
            self.checkpoint_gateway()

    def load_window(self, mark: float) -> None:
        self.write(ev.Load(elapsed=mark, window=30.0, replies=self.rng.randint(11, 15),
                           pulls=300, max_batch=2, busy=round(self.rng.uniform(0.03, 0.07), 4),
                           background=self.rng.randint(0, 2), in_flight=4,
                           time=self.at(mark)))
        self.evaluate("periodic", mark)


# ------------------------------------------------------------------ the test

def _start_console(run_dir: Path, port: int, log: Path) -> subprocess.Popen:
    proc = subprocess.Popen([str(Path(sys.executable).parent / "fedmoe"), "console", str(run_dir),
                             "--port", str(port), "--api-key", KEY], cwd=ROOT,
                            stdout=log.open("wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)

    def healthy():
        if proc.poll() is not None:
            raise AssertionError(f"the console exited: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                return True
        except OSError:
            return False

    _wait("the console to answer", healthy, timeout=60)
    return proc


CARD = "document.querySelector('.card[data-expert=\"{}\"]')"


def _charts_drawn(page: Page) -> dict:
    return page.js("""(() => {
      const cards = [...document.querySelectorAll('.card')];
      const points = (sel) => +(document.querySelector(sel)?.dataset.points || 0);
      return {status: document.body.dataset.status, cards: cards.length,
              drawn: cards.filter(c => +c.querySelector('svg').dataset.points > 0
                                  && c.querySelectorAll('svg path').length > 0).length,
              load: points('#chart-load'), bytes: points('#chart-bytes'),
              nodes: document.querySelectorAll('#nodes tbody tr').length,
              gateway: document.querySelector('#gateway')?.dataset.version || null};
    })()""")


def test_the_page_follows_a_run_being_written(tmp_path):
    live = LiveRun(tmp_path / "outputs")
    live.start()
    live.advance(60.0)
    port = _free_port()
    console = page = None
    try:
        console = _start_console(tmp_path / "outputs" / "latest", port, tmp_path / "console.log")
        page = Page(tmp_path / "profile")
        page.call("Page.addScriptToEvaluateOnNewDocument", source=(
            "window.__errors = []; addEventListener('error', e => __errors.push(e.message));"
            "addEventListener('unhandledrejection', e => __errors.push(String(e.reason)));"))
        page.open(f"http://127.0.0.1:{port}/console/")  # no key yet
        _wait("the page to ask for the key", lambda: page.js(
            "document.body.dataset.status === 'key' && !document.getElementById('key-form')"
            ".hidden"), timeout=30)
        page.open(f"http://127.0.0.1:{port}/console/?key={KEY}")
        try:
            drawn = _wait("charts with data", lambda: (lambda d: d["drawn"] == len(EXPERTS)
                          and d["load"] > 0 and d["bytes"] > 0 and d["nodes"] == 6 and d)(
                              _charts_drawn(page)), timeout=60)
        except AssertionError:
            raise AssertionError(f"{_charts_drawn(page)}; page errors: "
                                 f"{page.js('window.__errors')}") from None
        assert drawn["status"] == "live" and drawn["gateway"] is not None
        assert page.js("location.search") == ""  # the key left the address bar
        before = int(page.js(CARD.format("python_expert") + ".dataset.version"))
        assert before == live.versions["python_expert"]
        page.js("window.__same_page = 42")
        polls = int(page.js("document.body.dataset.polls"))
        live.advance(92.0)  # the run goes on while the page is open
        after = live.versions["python_expert"]
        assert after > before
        _wait("the new python_expert version", lambda: int(page.js(
            CARD.format("python_expert") + ".dataset.version")) == after, timeout=30)
        assert page.js("window.__same_page") == 42  # no reload happened
        assert int(page.js("document.body.dataset.polls")) > polls
        texts = page.js("document.body.innerText")
        assert "quarantined" in texts and "outlier-norm" in texts and "lost" in texts
        assert "server: " in texts and "v" + str(after) in texts
        assert page.js("window.__errors") == []
        write_docs = os.environ.get("FEDMOE_WRITE_SCREENSHOT") == "1"
        _screenshot(page, ROOT / "docs" / "console.png" if write_docs
                    else tmp_path / "console.png")
    finally:
        if page is not None:
            page.close()
        if console is not None:
            stop_tree(console.pid, grace=5)
        live.dir.close()


def _screenshot(page: Page, out: Path) -> None:
    """The whole page at laptop width, as one PNG."""
    time.sleep(0.5)  # let the last poll's drawing settle
    height = int(page.js("Math.ceil(document.documentElement.scrollHeight)"))
    page.call("Emulation.setDeviceMetricsOverride", width=1440, height=min(height, 2400),
              deviceScaleFactor=1, mobile=False)
    time.sleep(2.5)  # one poll redraws the charts at the new size
    shot = page.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
    import base64

    data = base64.b64decode(shot["data"])
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    out.write_bytes(data)
