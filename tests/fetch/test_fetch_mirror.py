"""`picozoo mirror export`, then pulls into a fresh cache from file:// and http:// mirrors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.artifacts import build_mirror, sha256_file
from support.http_server import serve_directory
from support.store import store_at

from picozoo.hub.mirror import direct_url, source_urls
from picozoo.hub.registry import load_registry
from picozoo.settings import split_mirrors

MODELS = ["picodet-s-416", "picodet-xs-320"]


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("PICOZOO_")}
    return subprocess.run(
        [sys.executable, "-m", "picozoo", *args],
        capture_output=True,
        text=True,
        env={**base, **env},
        check=False,
    )


def test_github_links_go_to_github_unless_a_mirror_holds_them() -> None:
    cfg = "https://github.com/PaddlePaddle/PaddleDetection/tree/release/2.6/configs/x.yml"
    raw = "https://raw.githubusercontent.com/PaddlePaddle/PaddleDetection/release/2.6/configs/x.yml"
    assert source_urls(cfg, ["http://m.lan/pp"]) == [raw]  # not the paddledet mirror
    assert source_urls(cfg, ["http://m.lan/pp", "github.com=http://m.lan/gh/"]) == [
        "http://m.lan/gh/PaddlePaddle/PaddleDetection/tree/release/2.6/configs/x.yml"
    ]
    art = "https://paddledet.bj.bcebos.com/deploy/Inference/x.tar"
    assert source_urls(art, ["github.com=http://m.lan/gh", "http://m.lan/pp"]) == [
        "http://m.lan/pp/deploy/Inference/x.tar"
    ]


def test_source_urls_keep_the_path() -> None:
    url = "https://paddledet.bj.bcebos.com/deploy/Inference/a b.tar"
    assert source_urls(url, []) == [url]
    assert source_urls(url, ["http://m.lan/pp/", "file:///srv/zoo"]) == [
        "http://m.lan/pp/deploy/Inference/a%20b.tar",
        "file:///srv/zoo/deploy/Inference/a%20b.tar",
    ]
    assert split_mirrors("http://a, http://b,,") == ("http://a", "http://b")
    assert direct_url(
        "https://github.com/PaddlePaddle/PaddleDetection/tree/release/2.6/configs/picodet/x.yml"
    ) == (
        "https://raw.githubusercontent.com/PaddlePaddle/PaddleDetection/release/2.6/configs/"
        "picodet/x.yml"
    )


@pytest.mark.slow
def test_bad_mirror_scheme_is_a_usage_error(tmp_path: Path) -> None:
    r = cli("pull", MODELS[0], "--mirror", "ftp://x", env={"PICOZOO_CACHE": str(tmp_path)})
    assert r.returncode == 2 and "unsupported mirror 'ftp://x'" in r.stderr


@pytest.mark.slow
def test_export_then_pull_from_fresh_caches(tmp_path: Path) -> None:
    reg = load_registry()
    upstream = tmp_path / "upstream"
    files = build_mirror(reg, upstream, tmp_path, MODELS, ("all",))
    src_cache = tmp_path / "cache-a"
    with serve_directory(upstream) as srv:
        mirror = f"{srv.url},github.com={srv.url}"
        r = cli("pull", *MODELS, "-a", "all",
                env={"PICOZOO_CACHE": str(src_cache), "PICOZOO_MIRROR": mirror})  # fmt: skip
        assert r.returncode == 0, r.stderr
    assert len(r.stdout.splitlines()) == len(files)
    exported = tmp_path / "exported"
    r = cli("mirror", "export", str(exported), "--format", "json",
            env={"PICOZOO_CACHE": str(src_cache)})  # fmt: skip
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert len(rows) == len(files)
    for (mid, kind), f in files.items():  # upstream path layout, identical bytes
        out = exported / reg.get(mid).artifact(kind).url_path
        assert sha256_file(out) == sha256_file(f)
    sums = (exported / "SHA256SUMS").read_text().splitlines()
    assert len(sums) == len(files)
    check = subprocess.run(["sha256sum", "-c", "--quiet", "SHA256SUMS"], cwd=exported, check=False)
    assert check.returncode == 0

    # 1. a teammate pulls from the shared folder via file://
    fresh = tmp_path / "cache-b"
    r = cli("pull", MODELS[0], "-a", "inference", "-a", "weights",
            env={"PICOZOO_CACHE": str(fresh), "PICOZOO_MIRROR": exported.as_uri()})  # fmt: skip
    assert r.returncode == 0, r.stderr
    inf, weights = (Path(p) for p in r.stdout.splitlines())
    assert (inf / "model.pdmodel").is_file() and weights.suffix == ".pdparams"
    # 2. ... or from any static web server
    fresh2 = tmp_path / "cache-c"
    with serve_directory(exported) as web:
        r = cli(
            "pull",
            *MODELS,
            env={"PICOZOO_CACHE": str(fresh2), "PICOZOO_MIRROR": f"{web.url},github.com={web.url}"},
        )
        assert r.returncode == 0, r.stderr
        assert sorted(web.stats.full_gets) == sorted(
            reg.get(m).artifact("inference").url_path for m in MODELS
        )
    a = store_at(src_cache).lookup(reg.get(MODELS[1]).artifact("inference"))
    c = store_at(fresh2).lookup(reg.get(MODELS[1]).artifact("inference"))
    assert a is not None and c is not None and a.sha256 == c.sha256


def test_export_named_model_not_cached(tmp_path: Path) -> None:
    r = cli("mirror", "export", str(tmp_path / "x"), "picodet-s-416",
            env={"PICOZOO_CACHE": str(tmp_path / "c")})  # fmt: skip
    assert r.returncode == 8 and "nothing cached for picodet-s-416" in r.stderr
    assert "picozoo pull picodet-s-416" in r.stderr


def test_export_refuses_a_corrupted_blob(tmp_path: Path, monkeypatch) -> None:
    from support.store import pull

    from picozoo.errors import CorruptBlobError
    from picozoo.hub.mirror import export

    reg = load_registry()
    build_mirror(reg, tmp_path / "up", tmp_path, MODELS[:1])
    with serve_directory(tmp_path / "up") as srv:
        pull(reg.get(MODELS[0]).artifact("inference"), cache_dir=tmp_path / "c", mirrors=srv.url)
    (entry,) = store_at(tmp_path / "c").entries()
    os.chmod(entry.blob, 0o644)
    with open(entry.blob, "r+b") as f:
        f.seek(10)
        f.write(b"\xff")
    with pytest.raises(CorruptBlobError, match="no longer matches"):
        export([entry], tmp_path / "out")
    assert not (tmp_path / "out" / reg.get(MODELS[0]).artifact("inference").url_path).exists()


# -- '..' in artifact URLs (issue 9, item 13) ------------------------------------------------
ESCAPES = [
    "https://paddledet.bj.bcebos.com/../secret.pdparams",
    "https://paddledet.bj.bcebos.com/deploy/../../secret.pdparams",
    "https://paddledet.bj.bcebos.com/deploy/%2e%2e/%2E%2E/secret.pdparams",
]


def test_source_urls_normalise_paths_and_refuse_escapes() -> None:
    from picozoo.errors import RegistryError

    assert source_urls("https://h/a/./b/../c%20d.tar", ["http://m/pp", "file:///srv"]) == [
        "http://m/pp/a/c%20d.tar",
        "file:///srv/a/c%20d.tar",
    ]
    assert source_urls("https://h/a/../b.tar", []) == ["https://h/b.tar"]
    for url in ESCAPES:
        for mirrors in (["http://m/pp"], ["file:///srv/zoo"], []):
            with pytest.raises(RegistryError, match="climbs above the host's root") as e:
                source_urls(url, mirrors)
            assert e.value.exit_code == 3


def _secret_beside_mirror(tmp_path: Path) -> tuple[Path, Path]:
    """A served folder holding a secret next to (not inside) the mirror folder ``pp``."""
    served = tmp_path / "served"
    (served / "pp").mkdir(parents=True)
    (served / "secret.pdparams").write_bytes(b"SECRET-" * 100)
    return served, served / "pp"


def _holds_secret(cache: Path) -> bool:
    return any(p.is_file() and b"SECRET-" in p.read_bytes() for p in cache.rglob("*"))


@pytest.mark.parametrize("url", ESCAPES)
def test_pull_of_an_escaping_url_reads_nothing_outside_the_mirror(tmp_path: Path, url) -> None:
    """Second line of defence: an Artifact made without the registry's checks."""
    from support.store import pull

    from picozoo.errors import RegistryError
    from picozoo.hub.registry import Artifact

    served, pp = _secret_beside_mirror(tmp_path)
    art = Artifact("m", "weights", url)
    with pytest.raises(RegistryError):
        pull(art, cache_dir=tmp_path / "c1", mirrors=pp.as_uri())
    with serve_directory(served) as srv, pytest.raises(RegistryError):
        pull(art, cache_dir=tmp_path / "c2", mirrors=f"{srv.url}/pp")
    assert dict(srv.stats.requests) == {}
    assert not _holds_secret(tmp_path / "c1") and not _holds_secret(tmp_path / "c2")


@pytest.mark.slow
def test_registry_with_an_escaping_url_exits_3_before_any_request(tmp_path: Path) -> None:
    served, pp = _secret_beside_mirror(tmp_path)
    reg = tmp_path / "evil.yaml"
    reg.write_text(
        "schema: 1\nfamilies: {f: {title: F}}\nmodels:\n"
        f"  - {{id: m, family: f, input_size: [320, 320], "
        f"artifacts: [{{kind: weights, url: '{ESCAPES[1]}'}}]}}\n"
    )
    cache = tmp_path / "cache"
    r = cli("pull", "m", "-a", "weights", env={"PICOZOO_CACHE": str(cache),
            "PICOZOO_REGISTRY": str(reg), "PICOZOO_MIRROR": pp.as_uri()})  # fmt: skip
    assert r.returncode == 3 and r.stderr.count("\n") == 1, r.stderr
    assert "field 'artifacts[0].url': its path climbs above the host's root" in r.stderr
    with serve_directory(served) as srv:
        r = cli("pull", "m", "-a", "weights", env={"PICOZOO_CACHE": str(cache),
                "PICOZOO_REGISTRY": str(reg), "PICOZOO_MIRROR": f"{srv.url}/pp"})  # fmt: skip
    assert r.returncode == 3, r.stderr
    assert dict(srv.stats.requests) == {}
    assert not cache.exists() or not _holds_secret(cache)
