"""Statistics: known samples give known percentiles (numpy's linear definition), and the
stability check flags a bimodal sample but not a tight one."""

from __future__ import annotations

import math

import numpy as np
import pytest

from picozoo.bench.records import Stability
from picozoo.bench.stats import ADVICE, short_warning, stability, summarize, warm


def test_known_statistics_of_1_to_10() -> None:
    xs = [float(x) for x in range(1, 11)]
    # linear: rank = (n-1)*q/100 -> p50 at 4.5 -> 5.5; p90 at 8.1 -> 9.1; p99 at 8.91 -> 9.91
    s = summarize(list(reversed(xs)))  # order must not matter
    assert s.n == 10
    assert s.median_ms == pytest.approx(5.5)
    assert s.p90_ms == pytest.approx(9.1)
    assert s.p99_ms == pytest.approx(9.91)
    assert s.mean_ms == pytest.approx(5.5)
    assert s.std_ms == pytest.approx(math.sqrt(8.25))  # population std (ddof=0)
    assert (s.min_ms, s.max_ms) == (1.0, 10.0)
    assert s.fps == pytest.approx(1000 / 5.5)


def test_one_and_two_samples() -> None:
    one = summarize([4.0])
    assert (one.median_ms, one.p90_ms, one.p99_ms, one.std_ms) == (4.0, 4.0, 4.0, 0.0)
    two = summarize([2.0, 4.0])
    assert two.p90_ms == pytest.approx(3.8) and two.p99_ms == pytest.approx(3.98)


def test_statistics_are_plain_floats() -> None:
    s = summarize(np.random.default_rng(1).lognormal(2.0, 0.5, size=101).tolist())
    assert all(type(getattr(s, k)) is float for k in ("median_ms", "p90_ms", "std_ms", "fps"))
    assert type(s.n) is int


def test_bad_input() -> None:
    with pytest.raises(ValueError):
        summarize([])


def test_bimodal_sample_is_flagged_and_the_advice_is_said_apart() -> None:
    bimodal = [10.0] * 50 + [20.0] * 50
    st = stability(summarize(bimodal))
    assert not st.stable
    assert st.warnings == ("std is 33% of the mean (limit 10%)",)  # what is wrong, no advice
    # the advice is said once per report, not in every warning of every cell
    assert "close other programs" in ADVICE and "--min-time" in ADVICE and "frequency" in ADVICE


def test_warnings_of_older_results_lose_their_repeated_advice() -> None:
    old = [
        "unstable: std is 25% of the mean (limit 10%); close other programs, pin the CPU "
        "frequency (e.g. `cpupower frequency-set -g performance`), or raise --min-time",
        "only 3 measured iterations (< 10): raise --min-iters or --min-time",
    ]
    assert [short_warning(w) for w in old] == [
        "std is 25% of the mean (limit 10%)",
        "only 3 measured iterations (< 10)",
    ]


def test_tight_sample_is_stable() -> None:
    rng = np.random.default_rng(2)
    tight = (10.0 + rng.normal(0, 0.1, size=200)).tolist()
    assert stability(summarize(tight)) == Stability(stable=True, warnings=())


def test_long_tail_is_flagged_even_when_std_is_small() -> None:
    xs = [10.0] * 980 + [16.0] * 20  # 2 % outliers: std is 8 % of the mean, p99 60 % above
    st = stability(summarize(xs))
    assert not st.stable
    assert [w for w in st.warnings if "p99" in w] == list(st.warnings)  # only the tail rule


def test_too_few_samples_is_flagged() -> None:
    st = stability(summarize([10.0] * 5))
    assert not st.stable and st.warnings == ("only 5 measured iterations (< 10)",)


def test_warm_up_detection() -> None:
    assert not warm([50, 40, 30, 20, 15, 12, 11, 10, 9, 8])
    assert warm([50, 30, 12, 10, 10, 10, 10, 10, 10, 10, 10, 10])
    assert not warm([10.0] * 9)  # needs two full windows
    assert warm([10, 10, 10, 10, 10, 10.4, 10.4, 10.4, 10.4, 10.4])  # 4 % apart: settled
    assert not warm([10, 10, 10, 10, 10, 10.6, 10.6, 10.6, 10.6, 10.6])  # 6 % apart: not yet
