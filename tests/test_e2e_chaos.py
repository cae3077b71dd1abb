"""Chaos on a TLS + authenticated deployment on 127.0.0.1: four honest SuperNodes with warm
workers (python_expert x2, sql_expert, docs_expert) and one registered red-team node, through
a SuperNode crash and a worker kill at once, a SuperLink restart on its state database and a
ServerApp kill, each run resumed from the last one's run directory.

Nothing is lost: every fault is survived (the node it hit, or the federation, sends an
accepted update again), every update merged before a fault is in the checkpoint the next run
resumed from, every checkpoint of every run reads back through the checked reader, the
red-team node is quarantined and no honest update is refused, and the experts learned.
``bench/chaos.py`` runs the same campaign longer, with a clean run to compare quality.
Every process is stopped by its recorded process group at the end, whatever happens.
"""

import json

import pytest

from fedmoe_flwr.server.guard import ROBUST_REASONS
from tests.chaos_campaign import RUNS, Campaign, Plan
from tests.chaos_figures import (
    check_checkpoints,
    initial_losses,
    last_versions,
    lost_updates,
    own_losses,
    recoveries,
    red_team,
)
from tests.chaos_fleet import Fleet

pytestmark = [pytest.mark.slow, pytest.mark.e2e]
PLAN = Plan()


@pytest.fixture(scope="module")
def chaos(tmp_path_factory):
    fleet = Fleet(tmp_path_factory.mktemp("chaos"), PLAN.nodes)
    campaign = Campaign(fleet, PLAN)
    try:
        fleet.up()
        outcome = campaign.run()
        yield fleet, campaign, outcome
    finally:
        fleet.stop_all(*campaign.procs.values())


def _ids(fleet, campaign):
    return ({fleet.node_id(n) for n in campaign.red}, {fleet.node_id(n) for n in campaign.honest})


def test_every_fault_is_survived(chaos):
    fleet, _, outcome = chaos
    rows = recoveries(outcome)
    print("\n" + "\n".join(json.dumps(r) for r in rows))
    assert {r["kind"] for r in rows} == {"node-crash", "worker-kill", "superlink-restart",
                                         "serverapp-kill"}
    assert all(r["recovery_s"] is not None for r in rows), (rows, [
        (f.target, f.detail.get("attempts")) for f in outcome.faults], fleet.logs_tail())
    assert outcome.exit_codes["c3"] == 0, (fleet.work / "c3.log").read_text()[-3000:]
    assert (fleet.out / "c3" / "summary.json").exists()


def test_a_superlink_restart_ends_the_run_and_the_resume_continues_it(chaos):
    fleet, _, outcome = chaos
    # Flower 1.41: flwr-serverapp watches its SuperLink (--parent-pid) and exits with it, so
    # the run cannot outlive a restart even though superlink.db keeps the nodes' keys and ids.
    assert outcome.superlink_ended_run, "Flower carried the run across the SuperLink " \
        "restart: the campaign (and docs/deployment.md) can drop the resume"
    assert not any(e["event"] == "end" for e in fleet.events("c1"))
    resume = next(e for e in fleet.events("c2") if e["event"] == "resume")
    assert resume["source"] == str(fleet.out / "c1")


def test_no_accepted_update_is_lost(chaos):
    fleet, _, _ = chaos
    for before, after in zip(RUNS, RUNS[1:], strict=False):
        old, new = fleet.events(before), fleet.events(after)
        assert lost_updates(old, new) == {}, (before, after)
        resumed = next(e for e in new if e["event"] == "resume")["versions"]
        for expert, version in last_versions(old).items():
            assert resumed[expert] >= version, (before, expert)


def test_no_checkpoint_is_unreadable(chaos):
    fleet, _, _ = chaos
    for run in RUNS:
        checked, problems = check_checkpoints(fleet.out / run)
        assert checked >= 4 and problems == [], (run, problems)  # 3 experts + gateway


def test_the_red_team_node_is_quarantined_and_no_honest_update_refused(chaos):
    fleet, campaign, _ = chaos
    red, honest = _ids(fleet, campaign)
    for run in RUNS:
        seen = red_team(fleet.events(run), red, honest)
        assert not seen["honest_refused"], (run, seen)
        assert set(seen["red_refused"]) <= set(ROBUST_REASONS), (run, seen)
    first = red_team(fleet.events("c1"), red, honest)
    assert first["quarantined"] and sum(first["red_refused"].values()) >= 3, first


def test_every_expert_learned_through_the_chaos(chaos):
    fleet, _, _ = chaos
    start = initial_losses(fleet.events("c1"))
    final = {}  # the newest own-domain loss of each expert: c3's final evaluation, or (a node
    for run in RUNS:  # that was still rejoining when c3 evaluated) the one before it
        final.update(own_losses({e["domain"]: e["losses"] for e in fleet.events(run)
                                 if e["event"] == "eval"}))
    final.update(own_losses(json.loads((fleet.out / "c3" / "summary.json").read_text())
                            ["eval"]["final"]))
    assert set(final) == set(start) == {"python_expert", "sql_expert", "docs_expert"}, [
        e for e in fleet.events("c3") if e["event"] in ("register", "eval", "error")]
    for domain, loss in final.items():  # a sanity bound: the quality bound is the bench's
        assert loss < start[domain], (domain, loss, start[domain])
