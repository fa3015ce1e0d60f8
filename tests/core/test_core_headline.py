"""The user's path: the README's headline commands, run for real on a fresh cache against a
loopback mirror of stand-in PicoDet-S-416 files (tests/support/demo_mirror.py), and the
stand-in's size against upstream's claims."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.demo_mirror import MODEL, build_demo_mirror
from support.http_server import serve_directory

from picozoo.hub.registry import load_registry
from picozoo.hub.store import Store
from picozoo.modelinfo import inspect_model
from picozoo.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
#: Only the measurement is shortened (how bench measures is tested in tests/bench); everything
#: else -- which models, which files, what is fetched -- is the README's command as it is.
SHORT_MEASUREMENT = ("--min-iters", "10", "--min-time", "0", "--warmup", "1")
Done = subprocess.CompletedProcess[str]


def headline_commands() -> list[list[str]]:
    """The ``a && b && c`` line after "the headline commands" in the README's Set up section."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Set up", 1)[1].split("\n## ", 1)[0]
    after = section.split("the headline commands", 1)[1]
    line = re.search(r"^picozoo pull .*$", after, re.M)
    assert line is not None, "no headline command line in the README's Set up section"
    return [shlex.split(c) for c in line.group(0).split("&&")]


def test_readme_has_the_headline_sequence() -> None:
    assert headline_commands() == [
        ["picozoo", "pull", "picodet-s-416"],
        ["picozoo", "convert", "--to", "onnx", "--no-postprocess"],
        ["picozoo", "bench", "--threads", "12", "--format", "md"],
    ]


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, list[Done]]]:
    """Run the headline commands in order on a fresh cache; yield (cache, finished processes)."""
    for module in ("paddle", "paddle2onnx", "onnxsim", "onnxruntime"):  # [convert] + [bench]
        pytest.importorskip(module)
    root = tmp_path_factory.mktemp("headline")
    build_demo_mirror(root / "mirror")
    cache = root / "cache"
    base = {k: v for k, v in os.environ.items() if not k.startswith("PICOZOO_")}
    done: list[Done] = []
    with serve_directory(root / "mirror") as srv:
        env = {**base, "PICOZOO_CACHE": str(cache), "PICOZOO_MIRROR": srv.url}
        for cmd in headline_commands():
            args = cmd[1:] + (list(SHORT_MEASUREMENT) if cmd[1] == "bench" else [])
            proc = subprocess.run(
                [sys.executable, "-m", "picozoo", *args],
                capture_output=True, text=True, env=env, timeout=600,
            )  # fmt: skip
            done.append(proc)
            if proc.returncode != 0:
                break
    yield cache, done


@pytest.mark.slow
def test_headline_commands_chain_on_a_fresh_cache(chain: tuple[Path, list[Done]]) -> None:
    done = chain[1]
    pull = done[0]
    assert pull.returncode == 0, pull.stderr
    pulled = Path(pull.stdout.strip())
    assert (pulled / "model.pdmodel").is_file() and "non_postprocess" not in pulled.name

    # convert with no ids: the model pulled above; it fetches the tarball it needs and says so
    convert = done[1]
    assert convert.returncode == 0, convert.stderr
    assert f"converting the inference-nopp tarball of every pulled model: {MODEL}" in (
        convert.stderr
    )
    assert f"{MODEL}: pulling inference-nopp" in convert.stderr
    onnx_path = Path(convert.stdout.strip())
    assert onnx_path.name == "model.onnx" and onnx_path.parent.parent.name == MODEL
    assert "parity ok" in convert.stderr

    # bench with no ids: every model with anything in the store -- this one
    bench = done[2]
    assert bench.returncode == 0, bench.stderr
    rows = [ln for ln in bench.stdout.splitlines() if ln.startswith("| PicoDet-S |")]
    assert len(rows) == 1 and "| 416*416 |" in rows[0] and "| onnxruntime | 12" in rows[0]
    assert "failed" not in rows[0]


@pytest.mark.slow
def test_demo_standin_is_picodet_s_416_sized(chain: tuple[Path, list[Done]]) -> None:
    """Params and FLOPs (2 x MACs at 416x416) of every stand-in file -- both Paddle tarballs and
    the converted ONNX -- within 10% of upstream's claims for PicoDet-S-416."""
    cache = chain[0]
    claims = load_registry().get(MODEL).claims
    assert claims.params_m == 1.18 and claims.flops_g == 1.65
    store = Store(Settings(cache_dir=cache))
    files = [e.path for e in store.entries() if e.kind.startswith("inference")]
    files += [c.path for c in store.converted(MODEL)]
    assert len(files) == 3
    for path in files:
        info = inspect_model(path)
        params_m, flops_g = info.params / 1e6, info.flops / 1e9
        assert abs(params_m / claims.params_m - 1) <= 0.10, (path, params_m)
        assert abs(flops_g / claims.flops_g - 1) <= 0.10, (path, flops_g)
        image = info.inputs[0]
        assert image.name == "image" and image.shape[1:] == [3, 416, 416]
