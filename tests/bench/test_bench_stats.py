"""Statistics: known samples give known percentiles (numpy's linear definition), and the
stability check flags a bimodal sample but not a tight one."""

from __future__ import annotations

import math

import numpy as np
import pytest

from picozoo.bench.stats import percentile, stability, summarize, warm


def test_known_percentiles_of_1_to_10() -> None:
    xs = [float(x) for x in range(1, 11)]
    # linear: rank = (n-1)*q/100 -> p50 at 4.5 -> 5.5; p90 at 8.1 -> 9.1; p99 at 8.91 -> 9.91
    assert percentile(xs, 50) == pytest.approx(5.5)
    assert percentile(xs, 90) == pytest.approx(9.1)
    assert percentile(xs, 99) == pytest.approx(9.91)
    assert percentile(xs, 0) == 1.0
    assert percentile(xs, 100) == 10.0
    s = summarize(list(reversed(xs)))  # order must not matter
    assert s["n"] == 10
    assert s["median_ms"] == pytest.approx(5.5)
    assert s["mean_ms"] == pytest.approx(5.5)
    assert s["std_ms"] == pytest.approx(math.sqrt(8.25))  # population std (ddof=0)
    assert (s["min_ms"], s["max_ms"]) == (1.0, 10.0)
    assert s["fps"] == pytest.approx(1000 / 5.5)


def test_percentiles_match_numpy_linear() -> None:
    rng = np.random.default_rng(1)
    for n in (1, 2, 7, 100, 1001):
        xs = rng.lognormal(2.0, 0.5, size=n).tolist()
        for q in (0, 10, 50, 90, 99, 100):
            assert percentile(xs, q) == pytest.approx(float(np.percentile(xs, q)), rel=1e-12)
        s = summarize(xs)
        assert s["std_ms"] == pytest.approx(float(np.std(xs)), rel=1e-9)


def test_bad_input() -> None:
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile([1.0], 101)
    with pytest.raises(ValueError):
        summarize([])


def test_bimodal_sample_is_flagged_with_advice() -> None:
    bimodal = [10.0] * 50 + [20.0] * 50
    st = stability(summarize(bimodal))
    assert not st["stable"]
    text = " ".join(st["warnings"])
    assert "std is 33% of the mean" in text
    assert "close other programs" in text and "--min-time" in text and "frequency" in text


def test_tight_sample_is_stable() -> None:
    rng = np.random.default_rng(2)
    tight = (10.0 + rng.normal(0, 0.1, size=200)).tolist()
    assert stability(summarize(tight)) == {"stable": True, "warnings": []}


def test_long_tail_is_flagged_even_when_std_is_small() -> None:
    xs = [10.0] * 980 + [16.0] * 20  # 2 % outliers: std is 8 % of the mean, p99 60 % above
    st = stability(summarize(xs))
    assert not st["stable"]
    assert [w for w in st["warnings"] if "p99" in w] == st["warnings"]  # only the tail rule


def test_too_few_samples_is_flagged() -> None:
    st = stability(summarize([10.0] * 5))
    assert not st["stable"] and "--min-iters" in st["warnings"][0]


def test_warm_up_detection() -> None:
    assert not warm([50, 40, 30, 20, 15, 12, 11, 10, 9, 8])
    assert warm([50, 30, 12, 10, 10, 10, 10, 10, 10, 10, 10, 10])
    assert not warm([10.0] * 9)  # needs two full windows
