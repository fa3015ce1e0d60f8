"""The user's path: the README's headline commands, run for real on a fresh cache against a
loopback mirror of stand-in PicoDet-S-416 files (tests/support/demo_mirror.py), and the
stand-in's size against upstream's claims."""

from __future__ import annotations

import json
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

from picozoo.atomic import sha256_file
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
    """Run the headline commands in order on a fresh cache; yield (cache, finished processes);
    each process's ``requests`` attribute: the mirror's requests (per URL path) it made."""
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
            before = dict(srv.stats.requests)
            proc = subprocess.run(
                [sys.executable, "-m", "picozoo", *args],
                capture_output=True, text=True, env=env, timeout=600,
            )  # fmt: skip
            proc.requests = {  # type: ignore[attr-defined]
                k: n - before.get(k, 0)
                for k, n in srv.stats.requests.items()
                if n > before.get(k, 0)
            }
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

    # bench with no ids: every model with anything in the store -- this one, from the ONNX
    # just converted (not upstream's onnx-nopp: nothing more is downloaded), and it says so
    bench = done[2]
    assert bench.returncode == 0, bench.stderr
    rows = [ln for ln in bench.stdout.splitlines() if ln.startswith("| PicoDet-S |")]
    assert len(rows) == 1 and "| 416*416 |" in rows[0] and "| onnxruntime | 12" in rows[0]
    assert "failed" not in rows[0]
    assert bench.requests == {}  # type: ignore[attr-defined]
    key = onnx_path.parent.name
    tarball = load_registry().get(MODEL).artifact("inference-nopp").filename
    said = (
        f"{MODEL}: benching the ONNX picozoo converted from its inference-nopp tarball "
        f"({tarball}), key {key}, in the store: {onnx_path}"
    )
    assert said in bench.stderr
    benched = (
        f"- benched {MODEL} / onnxruntime: converted by picozoo from the inference-nopp "
        f"tarball {tarball} sha256 "
    )
    footnote = next(ln for ln in bench.stdout.splitlines() if ln.startswith(benched))
    assert footnote.endswith(
        f", key {key} ({onnx_path}); sha256 of model.onnx: {sha256_file(onnx_path)}"
    )


@pytest.mark.slow
def test_bench_source_upstream_after_the_chain_benches_upstreams_file(
    chain: tuple[Path, list[Done]],
) -> None:
    """After the chain, ``--source upstream`` benches upstream's onnx-nopp (pulled now: one
    download), and ``--source converted`` the conversion in the store (nothing converted)."""
    cache, done = chain
    assert done[-1].returncode == 0
    mirror = cache.parent / "mirror"  # the chain's
    base = {k: v for k, v in os.environ.items() if not k.startswith("PICOZOO_")}
    cells = {}
    with serve_directory(mirror) as srv:
        env = {**base, "PICOZOO_CACHE": str(cache), "PICOZOO_MIRROR": srv.url}
        for source in ("upstream", "converted"):
            before = dict(srv.stats.requests)
            proc = subprocess.run(
                [sys.executable, "-m", "picozoo", "bench", MODEL, "--source", source,
                 "--threads", "1", *SHORT_MEASUREMENT, "--format", "json"],
                capture_output=True, text=True, env=env, timeout=600,
            )  # fmt: skip
            assert proc.returncode == 0, proc.stderr
            got = {k: n - before.get(k, 0) for k, n in srv.stats.requests.items()}
            cells[source] = (json.loads(proc.stdout)["cells"][0], got, proc.stderr)
    nopp = load_registry().get(MODEL).artifact("onnx-nopp")
    cell, got, err = cells["upstream"]
    assert cell["origin"] == "upstream" and cell["provenance"]["artifact"] == "onnx-nopp"
    assert {k: n for k, n in got.items() if n} == {nopp.url_path: 1}
    assert f"{MODEL}: benching upstream's onnx-nopp ONNX (--source upstream)" in err
    cell, got, err = cells["converted"]
    converted = Path(done[1].stdout.strip())
    assert cell["origin"] == "converted" and cell["source"] == str(converted)
    assert cell["provenance"]["key"] == converted.parent.name
    assert not any(got.values()) and "converting" not in err


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
