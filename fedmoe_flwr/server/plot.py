"""``progress.png``: training loss and expert versions over time, per specialty.

A person judges "is each expert still learning, and is anyone starved?" at a
glance from two curves; the same facts in ``metrics.jsonl`` take minutes.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from fedmoe_flwr.events import Eval, Update, Version, read_events


def plot_progress(metrics_path: Path, out_path: Path) -> Path:
    """Render train loss and version against wall-clock seconds from ``metrics.jsonl``."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and CI
    import matplotlib.pyplot as plt

    series: dict[str, list[tuple[float, float]]] = defaultdict(list)
    versions: dict[str, list[tuple[float, int]]] = defaultdict(lambda: [(0.0, 0)])
    evals: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for event in read_events(metrics_path):
        if isinstance(event, Update):
            series[event.adapter].append((event.elapsed, event.train_loss))
        elif isinstance(event, Version):
            versions[event.adapter].append((event.elapsed, event.version))
        elif isinstance(event, Eval):
            own = event.losses.get(event.domain)
            if own is not None:
                evals[event.domain].append((max(event.elapsed, 0.0), own))
    fig, (ax_loss, ax_ver) = plt.subplots(1, 2, figsize=(11, 4))
    for specialty, points in sorted(series.items()):
        t, loss = zip(*points, strict=True)
        (line,) = ax_loss.plot(t, loss, marker=".", label=f"{specialty} (train)")
        if evals.get(specialty):
            et, el = zip(*sorted(evals[specialty]), strict=True)
            ax_loss.plot(et, el, "s--", color=line.get_color(), label=f"{specialty} (held-out)")
        vt, version = zip(*versions[specialty], strict=True)
        ax_ver.step(vt, version, where="post", label=specialty, color=line.get_color())
    ax_loss.set(xlabel="seconds since training started", ylabel="loss",
                title="loss per expert")
    ax_ver.set(xlabel="seconds since training started", ylabel="expert version",
               title="merged updates per expert")
    for ax in (ax_loss, ax_ver):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_path, dpi=110)
    plt.close(fig)
    return out_path
