"""Robust merging math by hand, and the guard's checks on plain values."""

import numpy as np
import pytest

from fedmoe_flwr.config import ConfigError, RobustConfig, parse_run_config
from fedmoe_flwr.merge.robust import cosine, dot, ema, keep_ratio, norm, robust_average
from fedmoe_flwr.merge.validation import UpdateRejected
from fedmoe_flwr.server.guard import UpdateGuard

K = "m.lora_B.weight"


def w(*values):
    return {K: np.array(values, np.float32)}


def test_dot_norm_cosine_keep_by_hand():
    assert dot(w(1, 2, 3), w(4, 5, 6)) == 32.0
    assert norm(w(3, 4)) == 5.0
    assert cosine(w(1, 0), w(0, 2)) == 0.0 and cosine(w(1, 1), w(-2, -2)) == pytest.approx(-1)
    assert cosine(w(0, 0), w(1, 0)) is None
    assert keep_ratio(w(3, 4), w(-3, -4)) == 0.0  # an all-zero update keeps nothing
    assert keep_ratio(w(3, 4), w(3, 4)) == pytest.approx(2.0)
    assert keep_ratio(w(0, 0), w(1, 1)) == 1.0  # nothing to erase


def test_ema_by_hand():
    first = ema(None, w(1, 1), 0.8)
    np.testing.assert_array_equal(first[K], [1, 1])
    np.testing.assert_allclose(ema(first, w(6, -4), 0.8)[K], [0.8 + 1.2, 0.8 - 0.8])


def test_robust_averages_by_hand():
    sets = [w(1, 10), w(2, 20), w(3, 30), w(100, -1000)]  # the last one lies
    np.testing.assert_allclose(robust_average(sets, [1, 1, 1, 1], "mean")[K],
                               [26.5, -235.0])
    # trim 0.25 of 4 = 1 per side: coordinate 0 keeps 2, 3 -> 2.5; coordinate 1 keeps 10, 20
    np.testing.assert_allclose(robust_average(sets, [1, 1, 1, 1], "trimmed-mean", 0.25)[K],
                               [2.5, 15.0])
    np.testing.assert_allclose(robust_average(sets, [1, 1, 1, 1], "median")[K], [2.5, 15.0])
    # example counts weigh the mean, never a robust average (a liar could buy weight)
    np.testing.assert_allclose(robust_average(sets[:2], [3, 1], "mean")[K], [1.25, 12.5])
    np.testing.assert_allclose(robust_average(sets[:3], [1, 1, 1000], "median")[K], [2, 20])
    with pytest.raises(ValueError, match="unknown aggregate"):
        robust_average(sets, [1] * 4, "mode")


def guard(**rules):
    return UpdateGuard(RobustConfig(**{"warmup": 2, **rules}))


def test_zeros_are_refused_as_erasing_the_expert_from_the_first_update():
    g = guard()
    current = w(3, 4)
    with pytest.raises(UpdateRejected, match="erases-expert"):
        g.judge("a", w(0, 0), w(-3, -4), current)


def test_direction_and_norm_checks_start_after_the_warmup():
    g = guard(min_cosine=-0.2, max_norm_ratio=4.0)
    current = w(1, 1)
    for step in (1.0, 1.0):  # honest changes, all along (1, 0); two different replies
        update = w(1 + step + len(g.seen), 1)
        stats = g.judge("a", update, w(step, 0), current)
        assert stats.cos is None and stats.norm_ratio is None  # warming up
        g.accept("a", update, w(step, 0))
    flipped = g.judge  # a sign flip points against the recent movement
    with pytest.raises(UpdateRejected, match="against-expert"):
        flipped("a", w(0, 1), w(-1, 0), current)
    with pytest.raises(UpdateRejected, match="outlier-norm"):
        g.judge("a", w(6, 1), w(5, 0), current)  # 5x the median change
    ok = g.judge("a", w(2.5, 1.2), w(1.5, 0.2), current)
    assert ok.cos == pytest.approx(1.5 / np.hypot(1.5, 0.2)) and ok.norm_ratio == \
        pytest.approx(np.hypot(1.5, 0.2))


# The lowest cosine of an honest change measured in the committed chaos campaign (-0.29, just
# after a resume), the red node's flip in that campaign (-0.42), and the flips of the
# fake-Grid red-team test (-0.76 to -0.85).
HONEST_LOWEST, FLIPS = -0.2927, (-0.42, -0.76, -0.85)


@pytest.mark.parametrize(("cos", "refused"), [(HONEST_LOWEST, False),
                                              (HONEST_LOWEST - 0.1, False),
                                              *[(c, True) for c in FLIPS], (-1.0, True)])
def test_the_default_cosine_bound_leaves_honest_changes_a_margin(cos, refused):
    g = UpdateGuard(RobustConfig())  # the defaults, warm-up included
    current = w(50, 50)
    for i in range(g.rules.warmup):  # an expert that moved along (1, 0)
        g.accept("a", w(51 + i, 50), w(1, 0))
    delta = w(cos, float(np.sqrt(1 - cos * cos)))  # unit norm: the median change's
    update = {K: current[K] + delta[K]}
    if refused:
        with pytest.raises(UpdateRejected, match="against-expert"):
            g.judge("a", update, delta, current)
    else:
        assert g.judge("a", update, delta, current).cos == pytest.approx(cos, abs=1e-6)


def test_an_exact_repeat_of_a_reply_or_a_version_is_a_replay():
    g = guard()
    g.accept("a", w(2, 1), w(1, 0))
    with pytest.raises(UpdateRejected, match="replay"):
        g.judge("a", w(2, 1), w(1, 0), w(1, 1))
    g.remember("b", w(7, 7))  # a published version of expert b
    with pytest.raises(UpdateRejected, match="replay"):
        g.judge("b", w(7, 7), w(-1, -1), w(8, 8))


def test_strikes_quarantine_only_when_enabled():
    g = guard(strikes=2)
    assert not g.strike(5) and g.strike(5)
    off = UpdateGuard(RobustConfig(enabled=False))
    assert not off.strike(5) and not off.strike(5)
    stats = off.judge("a", w(0, 0), w(-3, -4), w(3, 4))  # measured, not refused
    assert stats.keep == 0.0


def test_robust_settings_are_checked():
    assert parse_run_config({"robust.min-cosine": -0.1}).robust.min_cosine == -0.1
    for key, bad in (("robust.min-keep", 1.5), ("robust.max-norm-ratio", 1.0),
                     ("robust.min-cosine", -2.0), ("robust.strikes", 0)):
        with pytest.raises(ConfigError, match=key):
            parse_run_config({key: bad})
