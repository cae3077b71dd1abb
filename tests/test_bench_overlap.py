"""The overlap benchmark's repeated-run table: means per (interval, mode), hand-computed."""

import importlib.util
import sys
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location(
    "bench_overlap", Path(__file__).resolve().parents[1] / "bench" / "overlap.py")
bench = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = bench
_spec.loader.exec_module(bench)


def _row(mode, repeat, share, loss, updates=10):
    return {"mode": mode, "interval": 30.0, "repeat": repeat, "updates": updates,
            "share": share, "gap": 30.0 + repeat, "in_flight": 4.0 if "carry" in mode else 0.0,
            "train": 29.0, "losses": {"docs_expert": loss, "sql_expert": 2 * loss}}


def test_means_average_each_mode_over_its_repeats_only():
    rows = [_row("stop-and-wait", 1, 0.8, 3.0), _row("overlap-carry", 1, 0.98, 2.9),
            _row("stop-and-wait", 2, 0.9, 3.4, updates=11), _row("overlap-carry", 2, 0.96, 3.5)]
    got = {m["mode"]: m for m in bench.means(rows)}
    assert got["stop-and-wait"]["share"] == pytest.approx(0.85)
    assert got["stop-and-wait"]["updates"] == pytest.approx(10.5)
    assert got["stop-and-wait"]["losses"] == pytest.approx({"docs_expert": 3.2,
                                                             "sql_expert": 6.4})
    assert got["overlap-carry"]["losses"]["docs_expert"] == pytest.approx(3.2)
    assert got["overlap-carry"]["gap"] == pytest.approx(31.5)
    assert got["overlap-carry"]["runs"] == 2


def test_the_repeated_table_names_each_run_and_the_means(tmp_path):
    rows = [_row("stop-and-wait", 1, 0.8, 3.0), _row("stop-and-wait", 2, 0.9, 3.4)]
    text = bench.write(rows, tmp_path, "bash scripts/bench.sh overlap --repeats 2")
    assert "| 30 s | stop-and-wait | 10 | 85% | 31.5 s | 0.0 s | 3.200 | 6.400 |" in text
    assert "| 2 | 30 s | stop-and-wait | 10 | 90% | 32.0 s | 0.0 s | 3.400 | 6.800 |" in text
    assert "--repeats 2" in (tmp_path / "overlap_repeats.md").read_text()
    assert not (tmp_path / "overlap.md").exists()  # the single-run table is left alone


def test_simulation_repeats_table_the_scored_losses_of_each_run_and_their_mean(
        tmp_path, monkeypatch):
    calls = []

    def fake_rows(interval, budget, work, out):
        calls.append(work.name)
        k = len(calls)  # run 1, then run 2: scored losses 4.0 then 5.0 for stop-and-wait
        return [{**_row(m, 0, 0.9, 1.0), "interval": interval,
                 "scored": {"docs_expert": k + 3.0 + d, "sql_expert": 1.0}}
                for m, d in (("stop-and-wait", 0.0), ("overlap-carry", -0.5))], {}

    monkeypatch.setattr(bench, "_sim_rows", fake_rows)
    monkeypatch.setattr(bench, "_sim_setup", lambda interval, budget: "a setup")
    text = bench.simulation_repeats(5.0, 75.0, 2, tmp_path / "sim", tmp_path)
    assert calls == ["r1", "r2"]  # one work directory per run
    assert "| 5 s | stop-and-wait | 10 | 90% | 30.0 s | 0.0 s | 4.500 | 1.000 |" in text
    assert "| 5 s | overlap-carry | 10 | 90% | 30.0 s | 4.0 s | 4.000 | 1.000 |" in text
    assert "| 2 | 5 s | overlap-carry |" in text
    assert "--repeats 2" in (tmp_path / "overlap_sim_repeats.md").read_text()
