"""`picozoo verify`: flipped bytes in blobs and unpacked files, and --deep structure checks."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
from support.artifacts import build_mirror, make_pdparams, publish
from support.http_server import serve_directory
from support.store import pull, store_at

from picozoo.errors import CheckpointError as PdparamsError
from picozoo.hub.checkpoint import read_pdparams
from picozoo.hub.pins import PinFile as Lock
from picozoo.hub.registry import load_registry
from picozoo.hub.store import Store
from picozoo.hub.verify import verify_cache

MODEL = "picodet-s-416"


def cli(*args: str, cache: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PICOZOO_CACHE": str(cache)}
    env.pop("PICOZOO_MIRROR", None)
    return subprocess.run(
        [sys.executable, "-m", "picozoo", *args], capture_output=True, text=True, env=env
    )


def flip_byte(path: Path, offset: int = 100) -> None:
    os.chmod(path, 0o644)
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Store:
    monkeypatch.delenv("PICOZOO_MIRROR", raising=False)
    monkeypatch.delenv("PICOZOO_OFFLINE", raising=False)
    reg = load_registry()
    mirror = tmp_path / "mirror"
    build_mirror(reg, mirror, tmp_path, [MODEL], ("inference", "weights", "onnx", "log"))
    _make_onnx(mirror / reg.get(MODEL).artifact("onnx").url_path)
    c = store_at(tmp_path / "cache")
    with serve_directory(mirror) as srv:
        for kind in ("inference", "weights", "onnx", "log"):
            pull(reg.get(MODEL).artifact(kind), cache_dir=c.root, mirrors=srv.url)
    return c


def _make_onnx(dest: Path) -> None:
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    node = helper.make_node("Relu", ["x"], ["y"])
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 4, 4])],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)]), dest)


@pytest.mark.slow
def test_clean_cache_verifies_deep_with_param_count(cache: Store) -> None:
    r = cli("verify", "--deep", "--format", "json", cache=cache.root)
    assert r.returncode == 0, r.stdout + r.stderr
    data = json.loads(r.stdout)
    assert data["ok"] and data["problems"] == []
    by_kind = {row["kind"]: row for row in data["artifacts"]}
    assert set(by_kind) == {"inference", "weights", "onnx", "log"}
    assert "params=276" in by_kind["weights"]["detail"]  # BN _mean/_variance not counted
    assert by_kind["weights"]["params"] == 276
    assert "checker ok" in by_kind["onnx"]["detail"]
    assert by_kind["inference"]["files"] == 3


@pytest.mark.slow
def test_flipped_byte_in_blob_is_flagged(cache: Store) -> None:
    art = load_registry().get(MODEL).artifact("weights")
    entry = cache.lookup(art)
    assert entry is not None
    flip_byte(entry.blob)
    r = cli("verify", MODEL, cache=cache.root)
    assert r.returncode == 6
    failed = [ln for ln in r.stdout.splitlines() if ln.startswith("FAILED")]
    assert len(failed) == 1 and "weights" in failed[0] and str(entry.blob) in failed[0]
    assert "1 problem(s)" in r.stderr
    assert cache.lookup(art).verified is False  # type: ignore[union-attr]


@pytest.mark.slow
def test_flipped_byte_in_unpacked_file_is_flagged(cache: Store) -> None:
    entry = cache.lookup(load_registry().get(MODEL).artifact("inference"))
    assert entry is not None
    flip_byte(entry.path / "model.pdiparams")
    (entry.path / "notes.txt").write_text("added by hand")
    r = cli("verify", cache=cache.root)
    assert r.returncode == 6
    failed = [ln for ln in r.stdout.splitlines() if ln.startswith("FAILED")]
    assert len(failed) == 2
    assert any("model.pdiparams" in ln and "sha256" in ln for ln in failed)
    assert any("unexpected file" in ln and "notes.txt" in ln for ln in failed)
    # pull notices the entry is unverified and serves nothing stale offline
    from picozoo.errors import OfflineError

    with pytest.raises(OfflineError, match="failed verification"):
        pull(load_registry().get(MODEL).artifact("inference"), cache_dir=cache.root, offline=True)


def pin_bad_content(cache: Store, kind: str, bad: Path) -> None:
    """Make ``bad`` the cached, pinned content of MODEL's ``kind`` (blob + ref + lock agree):
    what a registry or first download that pinned a bad file leaves."""
    from picozoo.atomic import sha256_file

    entry = cache.lookup(load_registry().get(MODEL).artifact(kind))
    assert entry is not None
    sha, size = sha256_file(bad), bad.stat().st_size
    blob = cache.store_blob(bad, sha)
    named = cache.link_named(blob, sha, entry.path.name)
    ref = cache.read_ref(entry.url)
    assert ref is not None
    cache.write_ref(
        dataclasses.replace(
            ref, sha256=sha, size=size, path=named.relative_to(cache.root).as_posix()
        )
    )
    lock = Lock.load((cache.root) / "picozoo.lock")
    lock.record(entry.url, sha, size)
    lock.save()


@pytest.mark.slow
def test_deep_flags_broken_structure(cache: Store, tmp_path: Path) -> None:
    reg = load_registry()
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage")
    pin_bad_content(cache, "onnx", bad)
    shallow = verify_cache(cache, reg, deep=False)
    assert shallow.ok, shallow.problems
    deep = verify_cache(cache, reg, deep=True)
    assert [p.kind for p in deep.problems] == ["onnx"]
    assert "onnx.checker" in deep.problems[0].message


@pytest.mark.slow
def test_verify_unknown_or_uncached_model(cache: Store) -> None:
    r = cli("verify", "picodet-s-41", cache=cache.root)
    assert r.returncode == 2 and "did you mean" in r.stderr
    r = cli("verify", "picodet-m-416", cache=cache.root)
    assert r.returncode == 6 and "nothing of this model is in the cache" in r.stdout


def test_pdparams_reader_refuses_code_and_counts_like_upstream(tmp_path: Path) -> None:
    info = read_pdparams(make_pdparams(tmp_path / "w.pdparams"))
    assert info.params == 276 and info.total == 292
    seen = [(t.name, t.shape, t.dtype) for t in info.tensors]
    assert ("backbone.bn._mean", (8,), "float32") in seen

    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):  # type: ignore[no-untyped-def]
            return (os.system, (f"touch {marker}",))

    evil = tmp_path / "evil.pdparams"
    evil.write_bytes(pickle.dumps({"w": Evil()}, protocol=4))
    with pytest.raises(PdparamsError, match="system"):
        read_pdparams(evil)
    assert not marker.exists()
    trunc = tmp_path / "t.pdparams"
    trunc.write_bytes((tmp_path / "w.pdparams").read_bytes()[:-200])
    with pytest.raises(PdparamsError):
        read_pdparams(trunc)


def test_pdparams_from_real_paddle_save(tmp_path: Path) -> None:
    paddle = pytest.importorskip("paddle")
    net = paddle.nn.Sequential(
        paddle.nn.Conv2D(3, 4, 3), paddle.nn.BatchNorm2D(4), paddle.nn.Linear(4, 2)
    )
    paddle.save(net.state_dict(), str(tmp_path / "m.pdparams"))
    info = read_pdparams(tmp_path / "m.pdparams")
    expected = sum(int(p.size) for p in net.parameters() if p.trainable)
    assert info.params == expected == 130
    assert info.total == 138  # + BN running mean/variance


def test_publish_weights_for_verify(tmp_path: Path) -> None:
    # publish() keeps the upstream path layout that mirrors rely on
    art = load_registry().get(MODEL).artifact("weights")
    dest = publish(art, make_pdparams(tmp_path / "w.pdparams"), tmp_path / "m")
    assert dest == tmp_path / "m" / "models" / "picodet_s_416_coco_lcnet.pdparams"


def test_pull_after_a_failed_verify_repairs_instead_of_blessing_damage(
    cache: Store, tmp_path: Path
) -> None:
    reg = load_registry()
    art = reg.get(MODEL).artifact("inference")
    entry = cache.lookup(art)
    assert entry is not None
    original = (entry.path / "model.pdiparams").read_bytes()
    flip_byte(entry.path / "model.pdiparams")
    assert not verify_cache(cache, reg).ok
    # the blob is intact, so pull re-extracts from it without any network (no mirror given)
    path = pull(art, cache_dir=cache.root, mirrors="http://127.0.0.1:9")
    assert (path / "model.pdiparams").read_bytes() == original
    assert cache.lookup(art).verified  # type: ignore[union-attr]
    assert verify_cache(cache, reg).ok


def test_corrupted_single_file_is_replaced_by_a_fresh_download(
    cache: Store, tmp_path: Path
) -> None:
    reg = load_registry()
    art = reg.get(MODEL).artifact("weights")
    entry = cache.lookup(art)
    assert entry is not None
    good = entry.sha256
    flip_byte(entry.path)  # the user-facing file (a hard link to the blob)
    result = verify_cache(cache, reg)
    assert [p.kind for p in result.problems] == ["weights"]
    mirror = tmp_path / "mirror"
    with serve_directory(mirror) as srv:
        path = pull(art, cache_dir=cache.root, mirrors=srv.url)
        assert srv.stats.full_gets[art.url_path] == 1
    from picozoo.atomic import sha256_file

    assert sha256_file(path) == good == sha256_file(cache.blob_path(good))
    assert verify_cache(cache, reg).ok


# -- issue 9 item 7: hostile checkpoints are refused fast, without allocating what they claim --
def nested_tuples_pickle(levels: int = 120) -> bytes:
    """{'w': numpy.dtype(t)} where t = (t', t') nested ``levels`` deep through the memo: 268
    bytes that print as 2**levels leaves (the old reader str()'d it: minutes, then memory)."""
    return b"\x80\x02}X\x01\x00\x00\x00wcnumpy\ndtype\nK\x01" + b"2\x86" * levels + b"\x85Rs."


def fake_buffer_pickle(nbytes: int = 3_000_000_000) -> bytes:
    """{'w': numpy.core.numeric._frombuffer(<nbytes as a number>, dtype('f4'), (nbytes/4,))}:
    87 bytes that the old reader turned into a zero-filled buffer and reported as params."""
    return (
        b"\x80\x02}X\x01\x00\x00\x00wcnumpy.core.numeric\n_frombuffer\n("
        + b"\x8a\x05" + nbytes.to_bytes(5, "little")
        + b"cnumpy\ndtype\nX\x02\x00\x00\x00f4\x85R"
        + b"J" + (nbytes // 4).to_bytes(4, "little") + b"\x85"
        + b"X\x01\x00\x00\x00Ct" + b"Rs."
    )  # fmt: skip


def _refused_quickly(path: Path, match: str) -> float:
    import time
    import tracemalloc

    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        with pytest.raises(PdparamsError, match=match):
            read_pdparams(path)
        elapsed = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20, peak  # nothing near what the file claims was allocated
    return elapsed


def test_hostile_checkpoints_are_refused_fast_and_small(tmp_path: Path) -> None:
    cases = {
        "nested.pdparams": (nested_tuples_pickle(), "nests containers more than 32 deep"),
        # shallow enough for the depth bound: the dtype code must be a short string
        "wide.pdparams": (nested_tuples_pickle(25), "dtype that is not a short type code"),
        "fake.pdparams": (fake_buffer_pickle(), "buffer is not bytes"),
        # BINBYTES8 declaring 3 GiB: the C unpickler would allocate it before reading
        "declared.pdparams": (
            b"\x80\x04}X\x01\x00\x00\x00w\x8e" + (3 << 30).to_bytes(8, "little") + b"xs.",
            "declares 3221225472 bytes but only 3 remain",
        ),
        # one real buffer claimed by 1000 arrays: params would be counted 1000 times
        "shared.pdparams": (_shared_buffer_pickle(1000), "claim 4000000 bytes but the file"),
    }
    assert len(cases["nested.pdparams"][0]) == 268
    assert len(cases["fake.pdparams"][0]) == 87
    for name, (data, match) in cases.items():
        (tmp_path / name).write_bytes(data)
        assert _refused_quickly(tmp_path / name, match) < 0.5, name


def _shared_buffer_pickle(copies: int) -> bytes:
    import numpy as np

    arr = np.zeros(1000, "float32")  # 4000 bytes, pickled once
    data = pickle.dumps({f"w{i}": arr for i in range(copies)}, protocol=2)
    assert len(data) < 25_000  # every name after the first is a memo reference to it
    return data


def test_verify_deep_reports_a_hostile_checkpoint_in_the_cache(
    cache: Store, tmp_path: Path
) -> None:
    import time

    reg = load_registry()
    bad = tmp_path / "bad.pdparams"
    bad.write_bytes(nested_tuples_pickle())
    pin_bad_content(cache, "weights", bad)
    t0 = time.perf_counter()
    result = verify_cache(cache, reg, model_ids=[MODEL], deep=True)
    assert time.perf_counter() - t0 < 5
    assert [p.kind for p in result.problems] == ["weights"]
    assert "nests containers more than 32 deep" in result.problems[0].message
    row = next(r for r in result.rows if r["kind"] == "weights")
    assert row["status"] == "FAILED" and row["params"] is None


# -- converted outputs (issue 17, item 7) -------------------------------------------------------
@pytest.fixture
def converted(tmp_path: Path) -> tuple[Path, Path]:
    """A small ONNX in ``tmp/m`` converted to OpenVINO (under umask 000) in a fresh cache:
    (the cache, the source)."""
    pytest.importorskip("openvino")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    from support.bench_helpers import build_conv_onnx

    (tmp_path / "m").mkdir()
    src = Path(build_conv_onnx(tmp_path / "m" / "tiny.onnx"))
    cache = tmp_path / "cache"
    r = _convert(src, cache, umask=0)
    assert r.returncode == 0, r.stderr
    return cache, src


def _convert(src: Path, cache: Path, umask: int = 0o022) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PICOZOO_CACHE": str(cache)}
    return subprocess.run(
        [sys.executable, "-m", "picozoo", "convert", str(src), "--to", "openvino"],
        capture_output=True, text=True, env=env, preexec_fn=lambda: os.umask(umask),
    )  # fmt: skip


def _output(cache: Path, name: str = "model.xml") -> Path:
    (path,) = cache.glob(f"converted/local-m/*/{name}")
    return path


def _zero_tail(path: Path, n: int = 128) -> None:
    os.chmod(path, 0o644)
    data = bytearray(path.read_bytes())
    data[-n:] = bytes(n)
    path.write_bytes(bytes(data))


@pytest.mark.slow
def test_converted_outputs_are_read_only_even_under_umask_000(converted: tuple[Path, Path]) -> None:
    cache, _ = converted
    files = sorted(_output(cache).parent.iterdir())
    assert [p.name for p in files] == ["model.bin", "model.xml", "provenance.json"]
    assert {oct(p.stat().st_mode & 0o777) for p in files} == {"0o444"}


@pytest.mark.slow
def test_verify_checks_converted_outputs(converted: tuple[Path, Path]) -> None:
    cache, _ = converted
    r = cli("verify", "--format", "json", cache=cache)
    assert r.returncode == 0, r.stdout + r.stderr
    (row,) = json.loads(r.stdout)["artifacts"]
    assert (row["model"], row["kind"], row["status"], row["files"]) == (
        "local-m", "converted:openvino", "ok", 2
    )  # fmt: skip
    binary = _output(cache, "model.bin")
    _zero_tail(binary)
    for args in (("verify",), ("verify", "local-m"), ("verify", "--deep")):
        r = cli(*args, cache=cache)
        assert r.returncode == 6, (args, r.stdout, r.stderr)
        assert f"FAILED local-m converted:openvino: {binary}: sha256 " in r.stdout
        assert r.stderr.count("picozoo: error:") == 1 and "Traceback" not in r.stderr
    # a registry model without converted outputs or downloads is still "nothing cached"
    r = cli("verify", MODEL, cache=cache)
    assert r.returncode == 6 and "nothing of this model is in the cache" in r.stdout


@pytest.mark.slow
def test_a_damaged_converted_output_is_rebuilt_with_a_warning(
    converted: tuple[Path, Path],
) -> None:
    cache, src = converted
    xml = _output(cache)
    good, pins = xml.read_bytes(), (cache / "picozoo.lock").read_text()
    _zero_tail(xml)
    r = _convert(src, cache)
    assert r.returncode == 0, r.stderr
    assert f"picozoo: warning: {xml}: sha256 " in r.stderr and "converting it again" in r.stderr
    assert xml.read_bytes() == good and not xml.stat().st_mode & 0o222
    assert (cache / "picozoo.lock").read_text() == pins
    r = _convert(src, cache)  # intact now: a plain cache hit
    assert r.returncode == 0 and "warning" not in r.stderr and "parity" not in r.stderr


@pytest.mark.slow
def test_a_converted_output_rewritten_with_its_provenance_fails_its_pin(
    converted: tuple[Path, Path],
) -> None:
    """Bytes replaced and provenance.json edited to match: the pins file still knows."""
    cache, src = converted
    xml = _output(cache)
    prov_path = xml.parent / "provenance.json"
    fake = b"<?xml version='1.0'?><net/>\n"
    os.chmod(xml, 0o644)
    xml.write_bytes(fake)
    prov = json.loads(prov_path.read_text())
    prov["output"].update(sha256=hashlib.sha256(fake).hexdigest(), size=len(fake))
    os.chmod(prov_path, 0o644)
    prov_path.write_text(json.dumps(prov))
    r = cli("verify", cache=cache)
    assert r.returncode == 6 and "picozoo.lock pinned" in r.stdout, r.stdout
    r = _convert(src, cache)
    assert r.returncode == 0 and "converting it again" in r.stderr
    assert xml.read_bytes() != fake


@pytest.mark.slow
@pytest.mark.parametrize(
    "damage",
    ["missing", "not JSON", "wrong types", "file outside its folder", "a FIFO"],
)
def test_a_converted_output_with_a_bad_provenance_is_flagged_and_rebuilt(
    converted: tuple[Path, Path], damage: str
) -> None:
    """provenance.json gone, garbled, of the wrong types, naming a file outside its folder
    (``../../etc/hostname`` would be hashed and served), or a FIFO (reading it would hang):
    ``verify`` names it, ``cache ls`` still lists, ``convert`` rebuilds, ``cache rm LABEL``
    removes it."""
    cache, src = converted
    prov_path = _output(cache).parent / "provenance.json"
    prov = json.loads(prov_path.read_text())
    prov_path.unlink()
    if damage == "not JSON":
        prov_path.write_text("{")
    elif damage == "wrong types":
        prov_path.write_text(json.dumps({**prov, "output": 5, "created": 3}))
    elif damage == "file outside its folder":
        prov["output"]["file"] = "../../../../etc/hostname"
        prov_path.write_text(json.dumps(prov))
    elif damage == "a FIFO":
        os.mkfifo(prov_path)
    r = cli("verify", "--format", "json", cache=cache)
    assert r.returncode == 6 and r.stderr.count("picozoo: error:") == 1, r.stderr
    (problem,) = json.loads(r.stdout)["problems"]
    assert problem.startswith(f"local-m converted: {prov_path} is missing or unreadable")
    r = cli("cache", "ls", "--format", "json", cache=cache)
    assert r.returncode == 0 and "Traceback" not in r.stderr
    r = _convert(src, cache)
    assert r.returncode == 0 and "converting it again" in r.stderr, r.stderr
    assert cli("verify", cache=cache).returncode == 0
    prov_path.chmod(0o644)
    prov_path.write_text("{")
    r = cli("cache", "rm", "local-m", cache=cache)
    assert r.returncode == 0 and not list(cache.glob("converted/local-m/*"))
