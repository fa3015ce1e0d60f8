"""Eval results live in the store: typed records, `cache ls` lists them, `cache rm MODEL` and
`cache prune` remove them; a planted `evals` link is refused. Also the store's one home for
partial-download names, staged-folder installs and converted pins."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from picozoo.errors import TamperedStoreError
from picozoo.hub.eval_result import EvalResult
from picozoo.hub.maintenance import list_rows, prune, remove
from picozoo.hub.partial import PartialDownload
from picozoo.hub.store import ConvertedOutput, Store, move_into_place, url_key
from picozoo.provenance import Provenance
from picozoo.settings import Settings

NMS = {"iou_threshold": 0.6, "keep_top_k": 100, "nms_top_k": 1000, "score_threshold": 0.025}


def cli(*args: str, cache: Path) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("PICOZOO_")}
    return subprocess.run(
        [sys.executable, "-m", "picozoo", *args],
        capture_output=True,
        text=True,
        env={**base, "PICOZOO_CACHE": str(cache)},
        check=False,
    )


def store_of(root: Path) -> Store:
    return Store(Settings(cache_dir=root))


def old_eval_file(cache: Path, model: str, engine: str = "onnxruntime", ap: float = 0.3) -> Path:
    """An eval result exactly as picozoo 0.x's ``detect/evaluate.py`` wrote it (a dict)."""
    key = {"model_sha256": hashlib.sha256(model.encode()).hexdigest(), "engine": engine,
           "precision": "fp32", "dataset": "d" * 64, "nms": NMS}  # fmt: skip
    out = {"schema": "picozoo.eval/1", "model": model, "model_path": f"/m/{model}.onnx", **key,
           "images": 5, "ann_file": "/coco/instances_val2017.json",
           "stats": {"AP": ap, "AP50": 0.5}, "per_class_ap": {"person": 0.4, "toaster": None},
           "images_per_s": 12.5, "inference_images_per_s": 20.0, "detections": 40}  # fmt: skip
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    path = cache / "evals" / f"{digest}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
    return path


def test_existing_eval_files_read_as_typed_records_and_round_trip(tmp_path: Path) -> None:
    path = old_eval_file(tmp_path, "picodet-s-416")
    store = store_of(tmp_path)
    (result,) = store.evals()
    assert isinstance(result, EvalResult)
    assert (result.model, result.engine, result.images, result.ap) == (
        "picodet-s-416", "onnxruntime", 5, 0.3)  # fmt: skip
    assert result.per_class_ap == {"person": 0.4, "toaster": None}
    assert store.eval_path(result.key) == path  # the same file name as before
    assert store.read_eval(result.key) == result
    assert result.to_dict() == json.loads(path.read_text())  # nothing lost or renamed
    path.unlink()
    assert store.write_eval(result) == path and store.read_eval(result.key) == result
    assert not [p for p in path.parent.iterdir() if p != path]  # no temp file left


@pytest.mark.slow
def test_cache_ls_lists_eval_results_and_cache_rm_removes_a_models(tmp_path: Path) -> None:
    cache = tmp_path / "c"
    mine = old_eval_file(cache, "picodet-s-416", ap=0.31)
    mine_ov = old_eval_file(cache, "picodet-s-416", engine="openvino", ap=0.30)
    other = old_eval_file(cache, "picodet-m-416")
    r = cli("cache", "ls", "--format", "json", cache=cache)
    assert r.returncode == 0, r.stderr
    rows = {row["path"]: row for row in json.loads(r.stdout)}
    assert set(rows) == {str(mine), str(mine_ov), str(other)}
    row = rows[str(mine)]
    assert row["model"] == "picodet-s-416" and row["kind"].startswith("eval:onnxruntime/fp32")
    assert row["dataset"] == "d" * 64 and row["images"] == 5 and row["ap"] == 0.31
    assert row["size"] == mine.stat().st_size and row["last_used"]
    table = cli("cache", "ls", cache=cache)
    assert "eval:openvino/fp32 instances_val2017.json x5" in table.stdout
    r = cli("cache", "rm", "picodet-s-416", cache=cache)
    assert r.returncode == 0, r.stderr
    assert not mine.exists() and not mine_ov.exists() and other.exists()
    assert "removed 2 item(s)" in r.stderr
    assert [row["model"] for row in list_rows(store_of(cache))] == ["picodet-m-416"]
    remove(store_of(cache), None)  # `cache rm --all`
    assert store_of(cache).evals() == []


def test_prune_removes_unreadable_results_and_interrupted_writes(tmp_path: Path) -> None:
    store = store_of(tmp_path)
    good = old_eval_file(tmp_path, "picodet-s-416")
    broken = good.with_name("0" * 20 + ".json")
    broken.write_text('{"schema": "picozoo.eval/1", "stats": {"AP"')  # truncated by hand
    tmp = good.with_name(f".{good.name}.abc123.tmp")  # a crash inside atomic_write_text
    tmp.write_text("{")
    fresh = good.with_name(f".{good.name}.def456.tmp")  # a write in progress right now
    fresh.write_text("{")
    for p in (good, broken, tmp):
        os.utime(p, (1, 1))
    assert {r.path for r in prune(store, dry_run=True)} == {broken, tmp}
    assert broken.exists() and tmp.exists()
    removed = prune(store)
    assert {r.path: r.reason for r in removed} == {
        broken: "unreadable eval result",
        tmp: "leftover of an interrupted eval-result write",
    }
    assert good.exists() and fresh.exists() and not broken.exists() and not tmp.exists()


@pytest.mark.slow
def test_a_planted_evals_link_is_refused(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    precious = old_eval_file(victim / "outside", "picodet-s-416")
    before = precious.read_bytes()
    cache = tmp_path / "c"
    cache.mkdir()
    (cache / "evals").symlink_to(precious.parent)
    store = store_of(cache)
    result = EvalResult.from_json(json.loads(before))
    assert result is not None
    for use in (store.evals, lambda: store.write_eval(result), lambda: store.read_eval({})):
        with pytest.raises(TamperedStoreError, match="evals"):
            use()
    for use in (lambda: prune(store), lambda: remove(store, None)):
        with pytest.raises(TamperedStoreError):
            use()
    r = cli("cache", "ls", cache=cache)
    assert r.returncode == 6 and "evals" in r.stderr and r.stderr.count("\n") <= 2
    r = cli("cache", "rm", "--all", cache=cache)
    assert r.returncode == 6
    assert precious.read_bytes() == before and sorted(victim.rglob("*")) == [
        victim / "outside", precious.parent, precious]  # fmt: skip


def test_a_planted_eval_file_link_is_never_read_and_prune_drops_the_link(tmp_path: Path) -> None:
    victim = old_eval_file(tmp_path / "outside", "picodet-s-416")
    store = store_of(tmp_path / "c")
    link = store.root / "evals" / victim.name
    link.parent.mkdir(parents=True)
    link.symlink_to(victim)
    assert store.evals() == [] and list_rows(store) == []
    os.utime(link, (1, 1), follow_symlinks=False)
    assert [r.path for r in prune(store)] == [link]
    assert not os.path.lexists(link) and victim.is_file()


# -- partial downloads, staged folders, converted pins: one home each -------------------------
def test_partial_download_names_are_made_and_parsed_in_one_place(tmp_path: Path) -> None:
    store = store_of(tmp_path)
    url = "https://h/x.part.tar"  # ".part" inside the file name itself
    shared = store.partial(url)
    mine = shared.per_process(4242)
    key = url_key(url)
    assert shared.path == store.part_path(url) == store.downloads_dir / f"{key}.part"
    assert mine.path.name == f"{key}.part.4242" and mine.meta.name == f"{key}.part.4242.json"
    for p in (shared, mine):
        for f in p.files():
            assert PartialDownload.parse(f) == p
        assert p.key == key
    assert (shared.pid, mine.pid) == (None, 4242)
    assert store.key_mutex_path(shared.key) == store.mutex_path(url)
    assert PartialDownload.parse(tmp_path / f".{key}.part.json.x1y2.tmp") is None
    for f in (*shared.files(), *mine.files()):
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(b"x")
    shared.discard()
    assert sorted(p.name for p in store.partial_files()) == sorted(f.name for f in mine.files())


def test_move_into_place_keeps_the_first_finished_folder(tmp_path: Path) -> None:
    final = tmp_path / "final"
    first, second, third = (tmp_path / n for n in ("a", "b", "c"))
    for d in (first, second, third):
        d.mkdir()
        (d / "payload").write_text(d.name)
    (first / "DONE").write_text("")
    (second / "DONE").write_text("")
    assert move_into_place(first, final, "DONE") is True
    assert move_into_place(second, final, "DONE") is False  # another process won: keep theirs
    assert (final / "payload").read_text() == "a" and not second.exists()
    (final / "DONE").unlink()  # a folder there that is not a finished install: an error
    with pytest.raises(OSError):
        move_into_place(third, final, "DONE")
    assert third.is_dir()


def test_pin_converted_pins_every_file_of_an_output_at_once(tmp_path: Path) -> None:
    store = store_of(tmp_path)
    folder = store.converted_dir("m", "k")
    folder.mkdir(parents=True)
    (folder / "model.xml").write_text("<xml/>")
    (folder / "model.bin").write_bytes(b"\0" * 7)
    prov: dict[str, Any] = {"target": "openvino", "output": {
        "file": "model.xml", "sha256": "a" * 64, "size": 6,
        "files": {"model.bin": {"sha256": "b" * 64, "size": 7}}}}  # fmt: skip
    store.pin_converted(ConvertedOutput("m", "k", folder, Provenance.from_json(prov)))
    pins = store.pins()
    xml, bin_ = (
        pins.get("picozoo-converted:m/k/model.xml"),
        pins.get("picozoo-converted:m/k/model.bin"),
    )
    assert xml is not None and (xml.sha256, xml.size) == ("a" * 64, 6)
    assert bin_ is not None and (bin_.sha256, bin_.size) == ("b" * 64, 7)
