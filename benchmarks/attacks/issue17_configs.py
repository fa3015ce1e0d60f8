"""Issue 17, ``infer_cfg.yml``: a YAML alias bomb inside an inference tarball (2), configs that
crashed with a traceback (14: sizes, ``keep_ratio``, ``interp``, ``mean``, an ONNX input not
named ``image``) or gave silent garbage (15: NaN mean, zero std, short ``label_list``,
``is_scale: "false"``), and a FIFO given as ``--config`` (10).

A bad config inside a pulled tarball is refused with exit 5 (at pull; a cache filled before
the check is refused by ``infer``/``convert`` with 5 and reported by ``verify --deep``, exit
6 as every ``verify`` problem); one given with ``--config``, exit 2. ``infer`` runs a real tiny
PicoDet-shaped ONNX (``support.tiny_detector``: 64 x 64 fixed input, 3 classes).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

MODEL = "picodet-s-416"
LABELS = ["a", "b", "c"]
#: What was cached is all there is: no download hides or replaces the cached tarball.
OFFLINE = {"PICOZOO_OFFLINE": "1"}


def alias_bomb_cfg(size: int = 416) -> str:
    """A ~1 KB infer_cfg.yml whose ``label_list: [*i]`` is 9**8 (43 M) strings when walked
    (what ``str()`` of each label did): the ``bomb`` key holds 9 levels of 9 aliases."""
    from support.artifacts import INFER_CFG

    rows = ['&a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    pairs = zip("abcdefgh", "bcdefghi", strict=True)
    rows += [f"&{c} [{', '.join([f'*{p}'] * 9)}]" for p, c in pairs]
    head = INFER_CFG.format(size=size).split("label_list:")[0]
    return head + "bomb: [" + ", ".join(rows) + "]\nlabel_list: [*i]\n"


def _tarball(lab: Any, kind: str, cfg_text: str) -> Any:
    """An inference tarball of MODEL (``kind``) holding ``cfg_text`` as its infer_cfg.yml,
    published in the lab's mirror; returns the artifact."""
    from support.artifacts import make_inference_dir, make_inference_tarball, publish

    art = lab.artifact(kind)
    src = make_inference_dir(lab.root / "build" / kind)
    (src / "infer_cfg.yml").write_text(cfg_text)
    publish(art, make_inference_tarball(src, lab.root / "build" / art.filename), lab.mirror)
    return art


def _cached_unchecked(lab: Any, art: Any) -> None:
    """Pull ``art`` as a picozoo without the config check did (a cache filled before it):
    the same pull, with the check after unpacking skipped."""
    import picozoo.hub.pull as hub_pull
    from picozoo.hub.store import Store
    from picozoo.settings import Settings

    store = Store(Settings(cache_dir=lab.cache, mirrors=(lab.mirror.as_uri(),)))
    saved = hub_pull.check_inference_dir
    hub_pull.check_inference_dir = lambda path, label: None
    try:
        hub_pull.pull(store, art)
    finally:
        hub_pull.check_inference_dir = saved


def _tiny(lab: Any) -> tuple[Path, Path]:
    """(the tiny no-post-processing ONNX, a PNG) in ``lab.root/model``."""
    import numpy as np
    from PIL import Image
    from support.tiny_detector import build_tiny_detector

    folder = lab.root / "model"
    onnx, png = folder / "model.onnx", folder / "photo.png"
    if not onnx.exists():
        build_tiny_detector(onnx)
        pixels = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(png)
    return onnx, png


def _config(lab: Any, edit: Callable[[dict[str, Any]], Any] | str) -> Path:
    """The tiny model's infer_cfg.yml changed by ``edit`` (a function of the parsed mapping,
    or the whole text), as ``lab.root/configs/infer_cfg.yml``."""
    import yaml
    from support.infer_cfg import infer_cfg

    path = lab.root / "configs" / "infer_cfg.yml"
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(edit, str):
        path.write_text(edit)
        return path
    data = yaml.safe_load(infer_cfg((64, 64), LABELS))
    edit(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _infer(lab: Any, config: Path, onnx: Path | None = None, **kw: Any) -> Any:
    model, png = _tiny(lab)
    out = lab.scratch / "out"
    return lab.picozoo("infer", str(onnx or model), str(png), "--config", str(config),
                       "--out", str(out), **kw)  # fmt: skip


def _resize(**fields: Any) -> Callable[[dict[str, Any]], None]:
    return lambda d: d["Preprocess"][0].update(fields)


def _normalize(**fields: Any) -> Callable[[dict[str, Any]], None]:
    return lambda d: d["Preprocess"][1].update(fields)


def _top(**fields: Any) -> Callable[[dict[str, Any]], None]:
    return lambda d: d.update(fields)


#: (scenario name, item, the edit, a word the one error line must hold)
BAD_CONFIGS: list[tuple[str, int, Callable[[dict[str, Any]], Any] | str, str]] = [
    ("target_size [0, 64]", 14, _resize(target_size=[0, 64]), "target_size"),
    ("target_size [-64, 64]", 14, _resize(target_size=[-64, 64]), "target_size"),
    ("target_size [100000, 100000]", 14, _resize(target_size=[100000, 100000]), "target_size"),
    ("target_size 96 vs a fixed 64x64 ONNX", 14, _resize(target_size=[96, 96]), "fixed input"),
    ("keep_ratio: true with a fixed-size ONNX", 14, _resize(keep_ratio=True), "keep_ratio"),
    ("interp: 99", 14, _resize(interp=99), "interp"),
    ("mean with 4 values", 14, _normalize(mean=[0.4, 0.4, 0.4, 0.4]), "mean"),
    ("std with a zero", 15, _normalize(std=[0.2, 0, 0.2]), "std"),
    ("is_scale: 'false' (a string)", 15, _normalize(is_scale="false"), "is_scale"),
    ("label_list shorter than the classes", 15, _top(label_list=["a", "b"]), "label_list"),
    ("NMS score_threshold 1.5", 2, _top(NMS={"score_threshold": 1.5}), "score_threshold"),
    ("NMS keep_top_k 0", 2, _top(NMS={"keep_top_k": 0}), "keep_top_k"),
    ("an unknown pre-processing step", 2,
     lambda d: d["Preprocess"].insert(1, {"type": "PadStride", "stride": 32}), "PadStride"),
]  # fmt: skip


def register(suite: Any) -> None:
    scenario, Verdict, GIB = suite.scenario, suite.Verdict, suite.GIB

    # item 2: the alias bomb inside a tarball ---------------------------------------------------
    @scenario("infer_cfg.yml alias bomb in a tarball: pull", 2, issue=17)
    def bomb_pull(lab: Any) -> Any:
        art = _tarball(lab, "inference", alias_bomb_cfg())
        r = lab.picozoo("pull", MODEL, "--mirror", lab.mirror.as_uri(), address_space=GIB)
        pinned = lab.pinned(art.url) is not None
        ok = not pinned and r.seconds < 10 and "alias" in r.stderr
        size = len(alias_bomb_cfg())
        return Verdict(r, frozenset({5}), ok, f"{size}-byte config, {r.seconds:.1f} s"
                       + (", pinned" if pinned else ""))  # fmt: skip

    @scenario("infer_cfg.yml target_size 0 in a tarball: pull", 2, issue=17)
    def bad_field_pull(lab: Any) -> Any:
        from support.artifacts import INFER_CFG

        text = INFER_CFG.format(size=416).replace("  - 416\n  - 416", "  - 0\n  - 416")
        art = _tarball(lab, "inference", text)
        r = lab.picozoo("pull", MODEL, "--mirror", lab.mirror.as_uri())
        pinned = lab.pinned(art.url) is not None
        line = "field 'Preprocess[0].target_size'" in r.stderr
        note = "pinned" if pinned else "" if line else "the field is not named"
        return Verdict(r, frozenset({5}), line and not pinned, note)

    def _cached_bomb(lab: Any) -> None:
        _cached_unchecked(lab, _tarball(lab, "inference-nopp", alias_bomb_cfg()))

    @scenario("infer_cfg.yml alias bomb already cached: verify --deep", 2, issue=17)
    def bomb_verify(lab: Any) -> Any:
        _cached_bomb(lab)
        r = lab.picozoo("verify", MODEL, "--deep", timeout=60, address_space=GIB)
        said = "infer_cfg.yml" in r.stdout + r.stderr and "alias" in r.stdout + r.stderr
        return Verdict(r, frozenset({6}), said and r.seconds < 10,
                       "" if said else "the config is not named")  # fmt: skip

    @scenario("infer_cfg.yml alias bomb already cached: infer", 2, quick=False, issue=17)
    def bomb_infer(lab: Any) -> Any:
        _cached_bomb(lab)
        _, png = _tiny(lab)
        r = lab.picozoo("infer", MODEL, str(png), "--engine", "paddle", "--out",
                        str(lab.scratch / "out"), env=OFFLINE, timeout=60,
                        address_space=4 * GIB)  # fmt: skip
        return Verdict(r, frozenset({5}), r.seconds < 15, f"{r.peak_rss_mb:.0f} MB peak RSS")

    @scenario("infer_cfg.yml alias bomb already cached: convert", 2, quick=False, issue=17)
    def bomb_convert(lab: Any) -> Any:
        _cached_bomb(lab)
        r = lab.picozoo("convert", MODEL, "--to", "onnx", "--no-postprocess", env=OFFLINE,
                        timeout=60, address_space=4 * GIB)  # fmt: skip
        return Verdict(r, frozenset({5}), r.seconds < 15, f"{r.peak_rss_mb:.0f} MB peak RSS")

    @scenario("infer_cfg.yml alias bomb as --config", 2, quick=False, issue=17)
    def bomb_config(lab: Any) -> Any:
        cfg = _config(lab, alias_bomb_cfg(64))
        r = _infer(lab, cfg, address_space=4 * GIB)
        return Verdict(r, frozenset({2}), r.seconds < 15 and "alias" in r.stderr)

    # items 14, 15, 2: bad fields given with --config -------------------------------------------
    def _bad(edit: Callable[[dict[str, Any]], Any] | str, word: str) -> Callable[[Any], Any]:
        def run(lab: Any) -> Any:
            r = _infer(lab, _config(lab, edit))
            named = "infer_cfg.yml" in r.stderr and word in r.stderr
            return Verdict(r, frozenset({2}), named, "" if named else f"{word!r} not named")

        return run

    for name, item, edit, word in BAD_CONFIGS:
        scenario(f"infer_cfg.yml {name}", item, quick=False, issue=17)(_bad(edit, word))

    @scenario("infer_cfg.yml mean .nan", 15, quick=False, issue=17)
    def nan_mean(lab: Any) -> Any:
        import yaml
        from support.infer_cfg import infer_cfg

        data = yaml.safe_load(infer_cfg((64, 64), LABELS))
        data["Preprocess"][1]["mean"] = [0.4, 0.4, 0.4]
        text = yaml.safe_dump(data, sort_keys=False).replace("- 0.4\n", "- .nan\n", 1)
        r = _infer(lab, _config(lab, text))
        return Verdict(r, frozenset({2}), "non-finite number" in r.stderr)

    @scenario("infer_cfg.yml without label_list: one warning", 15, quick=False, issue=17)
    def no_labels(lab: Any) -> Any:
        r = _infer(lab, _config(lab, lambda d: d.pop("label_list")))
        warned = sum("no label_list" in line for line in r.stderr.splitlines())
        return Verdict(r, frozenset({0}), warned == 1, f"{warned} warning line(s)")

    @scenario("ONNX input not named 'image'", 14, quick=False, issue=17)
    def input_name(lab: Any) -> Any:
        model = lab.root / "model" / "identity.onnx"
        model.parent.mkdir(parents=True, exist_ok=True)
        model.write_bytes(suite.tiny_onnx())  # one input, named 'x'
        r = _infer(lab, _config(lab, lambda d: None), onnx=model)
        return Verdict(r, frozenset({2}), "'x'" in r.stderr and "'image'" in r.stderr)

    # item 10: a FIFO as --config ---------------------------------------------------------------
    @scenario("infer_cfg.yml --config is a FIFO", 10, quick=False, issue=17)
    def fifo_config(lab: Any) -> Any:
        with _fifo(lab.root / "configs" / "fifo.yml") as fifo:
            r = _infer(lab, fifo, timeout=30)
        return Verdict(r, frozenset({2}), r.rc is not None and "FIFO" in r.stderr)


@contextlib.contextmanager
def _fifo(path: Path) -> Iterator[Path]:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(path)
    try:
        yield path
    finally:
        path.unlink()
