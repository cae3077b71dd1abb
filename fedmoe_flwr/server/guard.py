"""The robust checks every update passes after its form is checked, and node reputation.

A node can pass every check of form and still lie.  For each update the
guard measures, against what the expert has been doing (no torch, numpy on
the server's copies):

- ``keep``: the share of the expert's norm the update leaves (an update of
  zeros leaves none) -- refused below ``robust.min-keep``;
- ``cos``: the cosine of the update's change with the expert's recent
  movement, an exponential average of the changes accepted into it -- refused
  below ``robust.min-cosine`` (a sign flip or a replay of an old version
  points backwards);
- ``norm_ratio``: the change's norm against the median of the last accepted
  changes of that expert -- refused above ``robust.max-norm-ratio`` (a
  rescaled change);
- an exact repeat of an earlier reply or of a past version of the expert
  (``replay``).

The direction and norm checks start once ``robust.warmup`` changes were
accepted (before that there is nothing honest to compare with).  A node whose
updates are refused by these checks ``robust.strikes`` times is quarantined:
refused for the rest of the run, never sent another message.  The bounds come
from the statistics of honest updates (docs/safety.md says how they were
measured); every update event carries the three figures, so a run shows how
close honest updates came.
"""

from __future__ import annotations

import statistics
from collections import Counter, deque
from dataclasses import dataclass

import numpy as np
import xxhash

from fedmoe_flwr.config import RobustConfig
from fedmoe_flwr.merge.robust import cosine, ema, keep_ratio, norm
from fedmoe_flwr.merge.validation import UpdateRejected
from fedmoe_flwr.weights import Weights

ROBUST_REASONS = ("erases-expert", "against-expert", "outlier-norm", "replay")
RECENT = 16  # accepted change norms remembered per expert (the median's window)
SEEN = 256  # reply and version digests remembered per expert (replay detection)
MOMENTUM_DECAY = 0.8  # of the recent-movement average (about the last five changes)


@dataclass(frozen=True)
class UpdateStats:
    """How one update relates to its expert (logged with every update)."""

    keep: float
    cos: float | None  # None until the expert has moved (or a zero change)
    norm_ratio: float | None  # None during warm-up


def digest(weights: Weights) -> str:
    """A fast content hash of weight arrays (xxh3, keys in order)."""
    h = xxhash.xxh3_128()
    for key in sorted(weights):
        h.update(key.encode())
        h.update(np.ascontiguousarray(weights[key], np.float32).tobytes())
    return h.hexdigest()


class UpdateGuard:
    """Per-expert memory of accepted changes, and the strikes of each node."""

    def __init__(self, rules: RobustConfig) -> None:
        self.rules = rules
        self.momentum: dict[str, Weights] = {}
        self.norms: dict[str, deque] = {}
        self.seen: dict[str, deque] = {}
        self.accepted: Counter = Counter()
        self.strikes: Counter = Counter()
        self.changes = 0  # bumped by every change of this memory (what is saved to disk)

    def judge(self, adapter: str, update: Weights, delta: Weights,
              current: Weights) -> UpdateStats:
        """Measure one update; raise :class:`UpdateRejected` if a robust check refuses it."""
        r = self.rules
        stats = self.measure(adapter, delta, current)
        if not r.enabled:
            return stats
        if digest(update) in self.seen.get(adapter, ()):
            raise UpdateRejected("replay", "the weights repeat an earlier reply or an earlier "
                                 "version of the expert exactly")
        if stats.keep < r.min_keep:
            raise UpdateRejected("erases-expert", f"the update leaves {stats.keep:.0%} of the "
                                 f"expert's norm, under robust.min-keep = {r.min_keep:g}")
        if stats.cos is not None and stats.cos < r.min_cosine:
            raise UpdateRejected("against-expert", f"its change has cosine {stats.cos:.2f} "
                                 f"with the expert's recent movement, under "
                                 f"robust.min-cosine = {r.min_cosine:g}")
        if stats.norm_ratio is not None and stats.norm_ratio > r.max_norm_ratio:
            raise UpdateRejected("outlier-norm", f"its change is {stats.norm_ratio:.1f}x the "
                                 f"median of recent accepted changes, over "
                                 f"robust.max-norm-ratio = {r.max_norm_ratio:g}")
        return stats

    def measure(self, adapter: str, delta: Weights, current: Weights) -> UpdateStats:
        """The three figures, whether or not the checks are on."""
        warm = self.accepted[adapter] >= self.rules.warmup
        moved = self.momentum.get(adapter)
        recent = self.norms.get(adapter)
        ratio = None
        if warm and recent:
            median = statistics.median(recent)
            ratio = norm(delta) / median if median > 0 else None
        return UpdateStats(keep_ratio(current, delta),
                           cosine(delta, moved) if warm and moved is not None else None, ratio)

    def accept(self, adapter: str, update: Weights, delta: Weights) -> None:
        """An update passed every check and the strategy took it: remember its change."""
        self.momentum[adapter] = ema(self.momentum.get(adapter), delta, MOMENTUM_DECAY)
        self.norms.setdefault(adapter, deque(maxlen=RECENT)).append(norm(delta))
        self.remember(adapter, update)
        self.accepted[adapter] += 1

    def remember(self, adapter: str, weights: Weights) -> None:
        """A reply or a published version whose exact repeat is a replay."""
        self.seen.setdefault(adapter, deque(maxlen=SEEN)).append(digest(weights))
        self.changes += 1

    def strike(self, node_id: int) -> bool:
        """Count one robust refusal of the node; True once it is to be quarantined."""
        self.strikes[node_id] += 1
        self.changes += 1
        return bool(self.rules.enabled and self.strikes[node_id] >= self.rules.strikes)

    # ------------------------------------------------------------------ across a resume
    def snapshot(self) -> tuple[dict, Weights]:
        """What a resumed run needs to judge as this one would: counters and the movement.

        Returns JSON-able counters (norms, digests, accepted changes, strikes) and the
        recent-movement arrays keyed ``<adapter>/<tensor>``.
        """
        meta = {"norms": {a: list(d) for a, d in self.norms.items()},
                "seen": {a: list(d) for a, d in self.seen.items()},
                "accepted": dict(self.accepted),
                "strikes": {str(n): s for n, s in self.strikes.items()}}
        arrays = {f"{a}/{k}": v for a, w in self.momentum.items() for k, v in w.items()}
        return meta, arrays

    def restore(self, meta: dict, arrays: Weights) -> None:
        """Continue from a :meth:`snapshot` of the run this one resumes."""
        for key, value in arrays.items():
            adapter, _, tensor = key.partition("/")
            self.momentum.setdefault(adapter, {})[tensor] = np.asarray(value, np.float32)
        for adapter, norms in meta.get("norms", {}).items():
            self.norms[adapter] = deque((float(x) for x in norms), maxlen=RECENT)
        for adapter, seen in meta.get("seen", {}).items():
            self.seen[adapter] = deque((str(x) for x in seen), maxlen=SEEN)
        self.accepted.update({a: int(n) for a, n in meta.get("accepted", {}).items()})
        self.strikes.update({int(n): int(s) for n, s in meta.get("strikes", {}).items()})
        self.changes += 1

    def quarantined(self) -> list[int]:
        """Nodes whose strikes reached ``robust.strikes`` (refused for the run)."""
        return sorted(n for n, s in self.strikes.items()
                      if self.rules.enabled and s >= self.rules.strikes)
