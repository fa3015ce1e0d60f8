"""The Paddle cell runs Paddle Inference as PaddleDetection's deploy code does (issue 18, item
12): every switch of upstream's ``deploy/python/infer.py`` ``load_predictor`` (device CPU,
``--enable_mkldnn True``), read back from the real :class:`paddle.inference.Config`, recorded
in the cell; inputs are bound without a copy and the results are those of copying them in."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from support.needs import needs

pytestmark = needs("paddle")

#: upstream's switches, as its load_predictor leaves them on CPU with --enable_mkldnn True
UPSTREAM = {
    "mkldnn_enabled": True,
    "mkldnn_cache_capacity": 10,
    "ir_optim": True,
    "memory_optim": True,
    "use_feed_fetch_ops": False,
    "glog_info_disabled": True,
    "use_gpu": False,
}


def _upstream_config(model_file: Path, params_file: Path, threads: int) -> Any:
    """A Config set exactly as upstream's load_predictor sets it (CPU, MKLDNN), in its order."""
    from paddle.inference import Config

    config = Config(str(model_file), str(params_file))
    config.disable_gpu()
    config.set_cpu_math_library_num_threads(threads)
    config.set_mkldnn_cache_capacity(10)
    config.enable_mkldnn()
    config.disable_glog_info()
    config.enable_memory_optim()
    config.switch_use_feed_fetch_ops(False)
    return config


@pytest.fixture()
def files(tmp_path: Path) -> tuple[Path, Path]:
    """A Config only checks that its files exist until a predictor is made from it."""
    model, params = tmp_path / "model.pdmodel", tmp_path / "model.pdiparams"
    model.touch()
    params.touch()
    return model, params


@pytest.mark.slow
@pytest.mark.parametrize("threads", [1, 3])
def test_speed_config_is_upstreams_switch_for_switch(
    files: tuple[Path, Path], threads: int
) -> None:
    from paddle.inference import Config

    from picozoo.runtime.paddle import _summary, config_settings, make_config

    ours = make_config(Config(*map(str, files)), threads, reference=False)
    theirs = _upstream_config(*files, threads)
    assert config_settings(ours) == {**UPSTREAM, "cpu_math_library_num_threads": threads}
    assert config_settings(ours) == config_settings(theirs)
    # every row of Paddle's own summary too, not only the switches recorded
    assert _summary(ours) == _summary(theirs)


@pytest.mark.slow
def test_reference_config_turns_mkldnn_off(files: tuple[Path, Path]) -> None:
    from paddle.inference import Config

    from picozoo.runtime.paddle import config_settings, make_config

    s = config_settings(make_config(Config(*map(str, files)), 2, reference=True))
    assert s["mkldnn_enabled"] is False and s["cpu_math_library_num_threads"] == 2


@pytest.mark.slow
def test_a_default_config_is_not_upstreams(files: tuple[Path, Path]) -> None:
    """The read-back sees a switch left out (the comparison above can fail)."""
    from paddle.inference import Config

    from picozoo.runtime.paddle import config_settings

    plain = Config(*map(str, files))
    plain.disable_glog_info()
    plain.switch_ir_optim(False)
    s = config_settings(plain)
    assert s["ir_optim"] is False and s != {**UPSTREAM, "cpu_math_library_num_threads": 1}


# -- a real model: the runtime and the bench cell -----------------------------------------------


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    from support.paddle_models import build_models

    yield build_models(tmp_path_factory.mktemp("paddle_cfg"), ["legacy-sf", "pir-sf"])


@pytest.fixture()
def model_dir(models: dict[str, Path]) -> Path:
    return models["legacy-sf"]


def test_pir_config_keeps_memory_optimisation_off(files: tuple[Path, Path]) -> None:
    """Paddle 3.2.2 cannot make a predictor for a PIR model with memory optimisation on."""
    from paddle.inference import Config

    from picozoo.runtime.paddle import config_settings, make_config

    cfg = make_config(Config(*map(str, files)), 1, reference=False, pir=True)
    assert {**config_settings(cfg), "memory_optim": True} == {
        **UPSTREAM,
        "cpu_math_library_num_threads": 1,
    }


@pytest.mark.slow
@pytest.mark.parametrize("reference", [False, True])
def test_pir_model_loads_and_runs(models: dict[str, Path], reference: bool) -> None:
    from picozoo.runtime import load

    rt = load("paddle", models["pir-sf"], threads=1, reference=reference)
    assert rt.settings["model_file"] == "model.json" and rt.settings["memory_optim"] is False
    assert rt.settings["mkldnn_enabled"] is not reference
    feeds = {
        "image": np.ones((1, 3, 64, 64), "float32"),
        "scale_factor": np.ones((1, 2), "float32"),
    }
    assert [o.shape for o in rt.run(feeds)] == [(1, 5, 1024), (1, 1024, 4)]


@pytest.mark.slow
def test_runtime_and_bench_cell_record_upstreams_config(model_dir: Path) -> None:
    from picozoo.bench.records import BenchSpec
    from picozoo.bench.worker import run_spec
    from picozoo.runtime import load
    from picozoo.runtime.paddle import AS_UPSTREAM

    rt = load("paddle", model_dir, threads=2)
    expected = {**UPSTREAM, "cpu_math_library_num_threads": 2, "config_as": AS_UPSTREAM}
    assert expected.items() <= rt.settings.items()
    cell = run_spec(BenchSpec(model_dir, "paddle", 2, 2, 5, 0.0))
    assert expected.items() <= dict(cell.engine_settings).items()
    assert cell.engine_settings["timed"].startswith("share_external_data")


@pytest.mark.slow
def test_zero_copy_inputs_give_the_copied_results(model_dir: Path) -> None:
    """Binding the caller's arrays (no copy) gives exactly what copying them in gives, run after
    run with other arrays; non-contiguous and read-only arrays work; the inputs stay unchanged."""
    from paddle.inference import create_predictor

    from picozoo.runtime import load

    rt = load("paddle", model_dir, threads=1)
    copied = create_predictor(
        _upstream_config(model_dir / "model.pdmodel", model_dir / "model.pdiparams", 1)
    )

    def by_copy(feeds: dict[str, Any]) -> list[Any]:
        for name in copied.get_input_names():
            h = copied.get_input_handle(name)
            h.reshape(list(feeds[name].shape))
            h.copy_from_cpu(np.ascontiguousarray(feeds[name]))
        copied.run()
        return [copied.get_output_handle(n).copy_to_cpu() for n in copied.get_output_names()]

    rng = np.random.default_rng(0)
    size = 64  # support.paddle_models.SIZE
    feeds_list = []
    for k in range(3):
        big = rng.standard_normal((1, 3, 2 * size, 2 * size)).astype("float32")
        image = big[:, :, ::2, ::2] if k == 1 else np.ascontiguousarray(big[:, :, :size, :size])
        if k == 2:
            image.setflags(write=False)
        feeds_list.append({"image": image, "scale_factor": np.full((1, 2), 0.5 + k, "float32")})
    before = [{n: a.copy() for n, a in f.items()} for f in feeds_list]
    results = [rt.run(f) for f in feeds_list]
    for feeds, got, kept in zip(feeds_list, results, before, strict=True):
        want = by_copy(feeds)
        assert len(got) == len(want)
        assert all(np.array_equal(a, b) for a, b in zip(got, want, strict=True))
        assert all(np.array_equal(feeds[n], kept[n]) for n in feeds)
    assert not np.array_equal(results[0][0], results[1][0])  # the runs saw different inputs


@pytest.mark.slow
def test_the_same_arrays_stay_bound_and_their_changes_are_seen(model_dir: Path) -> None:
    """A bench cell gives the same arrays call after call: they are bound once, as upstream's
    inputs are copied in once. Nothing was copied, so an in-place change is seen by the next
    run; another array (even with equal contents) is bound anew."""
    from picozoo.runtime import load

    rt = load("paddle", model_dir, threads=1)
    rng = np.random.default_rng(1)
    image = rng.standard_normal((1, 3, 64, 64)).astype("float32")  # support.paddle_models.SIZE
    feeds = {"image": image, "scale_factor": np.ones((1, 2), "float32")}
    first = rt.run(feeds)
    bound = rt._bound
    again = rt.run(feeds)
    assert rt._bound is bound  # not bound again
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    image *= -3.0  # in place: the bound memory changes
    changed = rt.run(feeds)
    assert rt._bound is bound
    assert not np.array_equal(changed[0], first[0])
    fresh = load("paddle", model_dir, threads=1).run({n: a.copy() for n, a in feeds.items()})
    assert all(np.array_equal(a, b) for a, b in zip(changed, fresh, strict=True))
    other = {"image": image.copy(), "scale_factor": feeds["scale_factor"]}
    rt.run(other)
    assert rt._bound is not bound  # another array: bound anew
