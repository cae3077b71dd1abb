"""Specialties that join mid-run (run.allow-new-specialties, run.max-experts)."""

from tests.fake_grid import make_node, run

BASE = {"run.specialties": "python_expert,sql_expert", "run.max-updates": 60,
        "gateway.refresh-every": 0.0}


def _late(specialty):
    return make_node(specialty, join_delay=15)  # registers well after training started


def test_a_new_specialty_gets_an_expert_joins_the_gateway_and_trains(tmp_path):
    loop, summary, events = run(tmp_path, {1: make_node("python_expert"),
                                           2: make_node("sql_expert"), 3: _late("rust_expert")},
                                **BASE, **{"run.allow-new-specialties": True})
    start = next(i for i, e in enumerate(events) if e["event"] == "start")
    new = [i for i, e in enumerate(events) if e["event"] == "new-expert"]
    assert len(new) == 1 and new[0] > start  # created mid-run, after training began
    assert events[new[0]]["specialty"] == "rust_expert"
    assert summary["experts"]["rust_expert"]["version"] >= 3
    assert "rust_expert" in summary["gateway"]["coefficients"]
    assert (loop.federation.run_dir.root / "experts" / "rust_expert" / "meta.json").exists()
    versions = [e for e in events[new[0]:] if e["event"] == "version"]
    assert {e["adapter"] for e in versions} == {"python_expert", "sql_expert", "rust_expert"}


def test_new_specialties_are_refused_when_off_or_over_the_cap(tmp_path):
    nodes = {1: make_node("python_expert"), 2: make_node("sql_expert"), 3: _late("rust_expert")}
    _, summary, _ = run(tmp_path / "off", nodes, **BASE)
    assert summary["refused"]["3"].startswith("unknown-specialty")
    assert "run.allow-new-specialties" in summary["refused"]["3"]
    nodes = {1: make_node("python_expert"), 2: make_node("sql_expert"), 3: _late("rust_expert"),
             4: make_node("go_expert", join_delay=20)}
    _, summary, _ = run(tmp_path / "cap", nodes, **BASE, **{
        "run.allow-new-specialties": True, "run.max-experts": 3})
    assert "rust_expert" in summary["experts"] and "go_expert" not in summary["experts"]
    assert summary["refused"]["4"].startswith("too-many-experts")


def test_resume_restores_an_expert_that_joined_mid_run(tmp_path):
    nodes = {1: make_node("python_expert"), 2: make_node("sql_expert"), 3: _late("rust_expert")}
    first, summary, _ = run(tmp_path / "a", nodes, **BASE, **{"run.allow-new-specialties": True})
    old = first.federation.run_dir.root
    nodes = {1: make_node("python_expert"), 2: make_node("sql_expert"), 3: make_node("rust_expert")}
    second, _, events = run(tmp_path / "b", nodes, **BASE, **{
        "run.allow-new-specialties": True, "run.resume-from": str(old)})
    resumed = next(e for e in events if e["event"] == "resume")
    assert resumed["versions"]["rust_expert"] == summary["experts"]["rust_expert"]["version"]
    assert not [e for e in events if e["event"] == "new-expert"]  # restored, not re-created
