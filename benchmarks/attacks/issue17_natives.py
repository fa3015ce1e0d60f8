"""Issue 17, native code: a quantized model that makes paddle2onnx abort and a native converter
that dies by a signal (3), random bytes as a Paddle program, which crash Paddle Inference (9),
a huge declared input shape, a full disk during ``convert`` and a read-only cache for
``convert --to openvino`` (14).

The models are real: a PaddleSlim-style quantized PicoDet-like model
(``support.quant_models``, served by a file mirror as ``picodet-s-416-quant``'s tarball), the
tiny PicoDet-shaped ONNX of ``support.tiny_detector``, and ONNX files written with ``onnx``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

QUANT_MODEL = "picodet-s-416-quant"


def _tiny_onnx(lab: Any) -> Path:
    """The tiny no-post-processing PicoDet ONNX and its infer_cfg.yml in ``lab.root/model``."""
    from support.infer_cfg import infer_cfg
    from support.tiny_detector import build_tiny_detector

    onnx = lab.root / "model" / "model.onnx"
    if not onnx.exists():
        build_tiny_detector(onnx)
        (onnx.parent / "infer_cfg.yml").write_text(infer_cfg((64, 64), ["a", "b", "c"]))
    return onnx


def _huge_onnx(path: Path) -> Path:
    """An ONNX (one Relu) whose input declares 1x3x100000x200000: 224 GiB as float32."""
    import onnx
    from onnx import TensorProto, helper

    shape = [1, 3, 100000, 200000]
    graph = helper.make_graph(
        [helper.make_node("Relu", ["image"], ["scores"])],
        "huge",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, shape)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])
    model.ir_version = 7
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def _random_paddle_dir(folder: Path) -> Path:
    """5 KB of random bytes as ``model.pdmodel`` (+ random params and a real infer_cfg.yml)."""
    from support.infer_cfg import infer_cfg

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.pdmodel").write_bytes(os.urandom(5120))
    (folder / "model.pdiparams").write_bytes(os.urandom(4096))
    (folder / "infer_cfg.yml").write_text(infer_cfg((64, 64), ["a", "b", "c"]))
    return folder


def _png(path: Path) -> Path:
    import numpy as np
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def _only_empty_dirs(root: Path) -> bool:
    """Nothing half-written: no file under ``root`` (empty folders aside)."""
    return not root.exists() or not any(p.is_file() for p in root.rglob("*"))


def register(suite: Any) -> None:
    scenario = suite.scenario

    # item 3: the quantized model and aborting converters
    @scenario("convert picodet-s-416-quant (paddle2onnx aborts on it)", 3, quick=False, issue=17)
    def quantized(lab: Any) -> Any:
        from support.artifacts import make_inference_tarball, publish
        from support.quant_models import build_quantized

        art = lab.artifact("inference-nopp", model=QUANT_MODEL)
        src = build_quantized(lab.root / "build")
        tar = make_inference_tarball(src, lab.root / "build" / art.filename)
        publish(art, tar, lab.mirror)
        env = {"PICOZOO_MIRROR": lab.mirror.as_uri()}
        r = lab.picozoo("convert", QUANT_MODEL, "--to", "onnx", "--no-postprocess", env=env,
                        timeout=120)  # fmt: skip
        hint = f"picozoo bench {QUANT_MODEL} --engine paddle" in r.stderr
        clean = _only_empty_dirs(lab.cache / "converted")
        return suite.Verdict(
            r, frozenset({9}), hint and clean,
            "refused up front (quantize_linear ops), hint names `bench --engine paddle`"
            if hint else "no hint to Paddle Inference",
        )  # fmt: skip

    @scenario("a native converter dies by SIGABRT (pnnx)", 3, issue=17)
    def converter_abort(lab: Any) -> Any:
        onnx = _tiny_onnx(lab)
        pnnx = lab.root / "bin" / "pnnx"
        pnnx.parent.mkdir()
        pnnx.write_text("#!/bin/sh\necho 'pnnx: cannot go on' >&2\nkill -ABRT $$\n")
        pnnx.chmod(0o755)
        r = lab.picozoo("convert", str(onnx), "--to", "ncnn", "--pnnx-bin", str(pnnx))
        named = "SIGABRT" in r.stderr and "cannot go on" in r.stderr
        clean = _only_empty_dirs(lab.cache / "converted")
        note = "the signal and pnnx's last line are said; nothing cached"
        return suite.Verdict(r, frozenset({9}), named and clean, note)

    # item 9: a program that crashes Paddle Inference
    @scenario("infer --engine paddle: 5 KB of random bytes as model.pdmodel", 9, issue=17)
    def random_program_infer(lab: Any) -> Any:
        model = _random_paddle_dir(lab.root / "rnd")
        image = _png(lab.root / "img.png")
        r = lab.picozoo("infer", str(model), str(image), "--engine", "paddle")
        return suite.Verdict(r, frozenset({13}), "ProgramDesc" in r.stderr,
                             "probed before Paddle loads it (it would SIGSEGV)")  # fmt: skip

    @scenario("convert: 5 KB of random bytes as model.pdmodel", 9, issue=17)
    def random_program_convert(lab: Any) -> Any:
        model = _random_paddle_dir(lab.root / "rnd")
        r = lab.picozoo("convert", str(model), "--to", "onnx")
        clean = _only_empty_dirs(lab.cache / "converted")
        return suite.Verdict(r, frozenset({9}), clean, "probed before paddle2onnx reads it")

    # item 14: huge shapes, full and read-only disks
    @scenario("OpenVINO: a declared input of 224 GiB (infer)", 14, issue=17)
    def huge_input_infer(lab: Any) -> Any:
        onnx = _huge_onnx(lab.root / "huge" / "model.onnx")
        cfg = _tiny_onnx(lab).parent / "infer_cfg.yml"
        image = _png(lab.root / "img.png")
        r = lab.picozoo("infer", str(onnx), str(image), "--engine", "openvino",
                        "--config", str(cfg), address_space=8 << 30)  # fmt: skip
        return suite.Verdict(r, frozenset({13, 2}), True, "refused before any allocation")

    @scenario("OpenVINO: a declared input of 224 GiB (convert --to openvino)", 14, issue=17)
    def huge_input_convert(lab: Any) -> Any:
        onnx = _huge_onnx(lab.root / "huge" / "model.onnx")
        r = lab.picozoo("convert", str(onnx), "--to", "openvino", address_space=8 << 30)
        return suite.Verdict(r, frozenset({13, 2}), _only_empty_dirs(lab.cache / "converted"),
                             "refused before any allocation; nothing cached")  # fmt: skip

    @scenario("full disk during convert (ENOSPC)", 14, issue=17)
    def full_disk_convert(lab: Any) -> Any:
        onnx = _tiny_onnx(lab)
        with suite.tmpfs(lab.cache, "size=16k") as mounted:
            r = lab.picozoo("convert", str(onnx), "--to", "openvino")
            clean = _only_empty_dirs(lab.cache / "converted")
        note = "tmpfs of 16 KB; nothing half-written" if mounted else "cannot mount (not root)"
        return suite.Verdict(r, frozenset({12}), mounted and clean, note)

    @scenario("full disk for convert --out (ENOSPC)", 14, issue=17)
    def full_disk_out(lab: Any) -> Any:
        onnx = _tiny_onnx(lab)
        out = lab.scratch / "out"
        with suite.tmpfs(out, "size=4k") as mounted:
            r = lab.picozoo("convert", str(onnx), "--to", "openvino", "--out", str(out))
            clean = not any(out.rglob("*.part"))
        note = "tmpfs of 4 KB; no .part left" if mounted else "cannot mount (not root)"
        return suite.Verdict(r, frozenset({12}), mounted and clean, note)

    @scenario("read-only cache for convert --to openvino (EROFS)", 14, issue=17)
    def read_only_convert(lab: Any) -> Any:
        onnx = _tiny_onnx(lab)
        with suite.tmpfs(lab.cache, "ro,size=64k") as mounted:
            r = lab.picozoo("convert", str(onnx), "--to", "openvino")
        note = "read-only tmpfs" if mounted else "cannot mount (not root)"
        return suite.Verdict(r, frozenset({12}), mounted, note)
