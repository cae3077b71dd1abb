"""The chaos campaign's figures, read back from its run directories with the project's readers.

- accepted updates lost: every update a run logged as merged before a fault
  ended it must be in the checkpoint the next run resumed from (its
  ``resume`` event's versions >= the update's version);
- checkpoints unreadable: every expert and gateway checkpoint of every run
  directory, current and kept versions alike, through the checked reader
  (:class:`fedmoe_flwr.server.rundir.RunView` / ``AdapterInfo.weights``:
  meta fields, checksum, finite);
- recovery: fault -> the next accepted update of the node it hit (of any node
  for the SuperLink and the ServerApp);
- quality: each expert's final held-out loss on its own domain.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from fedmoe_flwr.server.rundir import AdapterInfo, RunDirError, RunView
from tests.chaos_campaign import NODE_FAULTS, Outcome, accepted


def lost_updates(before: list[dict], after: list[dict]) -> dict[str, int]:
    """Per expert: merged updates of ``before`` newer than what ``after`` resumed from."""
    resume = next((e for e in after if e["event"] == "resume"), None)
    if resume is None:
        raise AssertionError("the next run has no resume event")
    lost: Counter = Counter()
    for e in accepted(before):
        if e["version"] > resume["versions"].get(e["adapter"], -1):
            lost[e["adapter"]] += 1
    return dict(lost)


def last_versions(events: list[dict]) -> dict[str, int]:
    """Per expert: the newest version a merged update of the run reached."""
    out: dict[str, int] = {}
    for e in accepted(events):
        out[e["adapter"]] = max(out.get(e["adapter"], -1), e["version"])
    return out


def _version_dirs(root: Path) -> list[tuple[str, str, Path]]:
    """Every kept version directory: (name, kind, path), experts then the gateway."""
    out = []
    for kind, versions in (("expert", root / "experts" / ".versions"),
                           ("gateway", root / ".versions")):
        for path in sorted(versions.glob("*-v[0-9]*")) if versions.is_dir() else []:
            out.append((path.name.rsplit("-v", 1)[0], kind, path))
    return out


def check_checkpoints(root: Path) -> tuple[int, list[str]]:
    """``(checked, problems)``: each checkpoint of a run directory read as the commands do."""
    problems: list[str] = []
    checked = 0
    try:
        view = RunView(root, check=False)
        for name in view.names():
            checked += 1
            view.adapter(name).weights()
    except RunDirError as err:
        problems.append(str(err))
    for name, kind, path in _version_dirs(root):
        checked += 1
        try:
            meta = json.loads((path / "meta.json").read_text())
            config = json.loads((path / "adapter_config.json").read_text())
            AdapterInfo(name, kind, path, root, meta, config).weights()
        except (OSError, ValueError, KeyError) as err:
            problems.append(f"{path}: {err}")
    return checked, problems


def recoveries(outcome: Outcome) -> list[dict]:
    """One row per fault: kind, target, run, seconds to the next accepted update (or None)."""
    rows = []
    for i, f in enumerate(outcome.faults):
        back = outcome.recovered.get(i)
        rows.append({"kind": f.kind, "target": f.target, "run": f.run,
                     "recovery_s": None if back is None else round(back - f.at, 1),
                     "starts": f.detail.get("starts", 0),
                     "scope": "node" if f.kind in NODE_FAULTS else "any node"})
    return rows


def own_losses(evals: dict) -> dict[str, float]:
    """``{domain: loss of that domain's expert}`` from a summary's ``eval`` matrix."""
    return {d: float(row[d]) for d, row in evals.items() if d in row}


def initial_losses(events: list[dict]) -> dict[str, float]:
    """Each expert's own-domain loss at the run's initial evaluation."""
    return {e["domain"]: float(e["losses"][e["domain"]]) for e in events
            if e["event"] == "eval" and e["tag"] == "initial" and e["domain"] in e["losses"]}


def training_seconds(events: list[dict]) -> float:
    """Seconds a run trained: its start event to its end (or, killed, its last event)."""
    start = next((e["time"] for e in events if e["event"] == "start"), None)
    if start is None:
        return 0.0
    end = next((e["time"] for e in events if e["event"] == "end"), events[-1]["time"])
    return max(0.0, end - start)


def loss_at(events: list[dict], domain: str, t: float) -> float:
    """The own-domain loss of ``domain``'s expert at training second ``t``, interpolated
    linearly between the run's evaluations (initial at 0, periodic, final)."""
    points = sorted((0.0 if e["tag"] == "initial" else e["elapsed"], e["losses"][domain])
                    for e in events if e["event"] == "eval" and e["domain"] == domain)
    if not points:
        raise AssertionError(f"no evaluation of {domain}")
    if t <= points[0][0]:
        return points[0][1]
    for (t0, l0), (t1, l1) in zip(points, points[1:], strict=False):
        if t0 <= t <= t1:
            return l0 + (l1 - l0) * ((t - t0) / (t1 - t0) if t1 > t0 else 1.0)
    return points[-1][1]


def red_team(events: list[dict], red: set[str], honest: set[str]) -> dict:
    """What the robust checks did in one run: refusals of the red-team node, its quarantine,
    refusals of honest nodes (which must be none), and how many honest nodes trained."""
    rejected = [e for e in events if e["event"] == "rejected"]
    return {"red_refused": Counter(e["reason"] for e in rejected if e.get("node") in red),
            "quarantined": any(e["event"] == "refused" and e["node"] in red
                               and e["reason"].startswith("quarantined") for e in events),
            "red_accepted": len([e for e in accepted(events) if e["node"] in red]),
            "honest_refused": Counter(e["reason"] for e in rejected
                                      if e.get("node") in honest),
            # how many honest nodes had an update merged in this run: a resumed run that
            # trains on fewer nodes than it could is a recovery that did not happen
            "honest_trained": len({e["node"] for e in accepted(events) if e["node"] in honest})}
