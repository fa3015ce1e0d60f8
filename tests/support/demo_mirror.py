"""Build a local mirror with stand-in PicoDet-S-416 inference tarballs and ONNX files in the
upstream layout.

The upstream host cannot be reached from every machine (CI here has no internet). This script
writes ``deploy/Inference/picodet_s_416_coco_lcnet{,_non_postprocess}.tar`` under DIR, each a
real Paddle inference model (legacy ``model.pdmodel`` format, like upstream's) as big as
PicoDet-S-416 -- 1.16 M parameters and 1.71 GFLOPs at 416x416 (upstream claims 1.18 M and
1.65 G; picozoo's convention, 2 x MACs) from an LCNet-like backbone, a 4-level neck and head
(3598 anchor points) -- with random weights. They are stand-ins: the files are not upstream's,
so mAP means nothing, but pull, verify, convert and bench do real work of the real size.
Like upstream, the mirror also has the two models as ONNX (``deploy/third_engine/*.onnx``, the
``onnx`` and ``onnx-nopp`` artifacts: converted from the same Paddle models by picozoo, inputs
in Paddle's order, batch symbolic), which ``picozoo bench`` uses by default.

Usage (from the repository root)::

    python tests/support/demo_mirror.py /tmp/demo-mirror
    python -m http.server -d /tmp/demo-mirror 8000 &        # or use file:///tmp/demo-mirror
    export PICOZOO_MIRROR=http://127.0.0.1:8000
    picozoo pull picodet-s-416 && picozoo convert --to onnx --no-postprocess && \
        picozoo bench --threads 12 --format md
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from picozoo.hub.registry import load_registry
from support.artifacts import make_inference_tarball, publish
from support.paddle_models import build_models

MODEL = "picodet-s-416"
VARIANT_OF_KIND = {
    "inference": "legacy-demo416",
    "inference-nopp": "legacy-demo416-nopp",
    "onnx": "legacy-demo416",
    "onnx-nopp": "legacy-demo416-nopp",
}


def build_demo_mirror(root: Path) -> list[Path]:
    """Write the stand-in tarballs and ONNX files of ``picodet-s-416`` under ``root``; return
    their paths."""
    from picozoo.convert import convert_paddle_dir_to_onnx

    model = load_registry().get(MODEL)
    written = []
    with tempfile.TemporaryDirectory() as tmp:
        dirs = build_models(Path(tmp), sorted(set(VARIANT_OF_KIND.values())))
        for kind, variant in VARIANT_OF_KIND.items():
            artifact = model.artifact(kind)
            if artifact.is_tarball:
                made = make_inference_tarball(dirs[variant], Path(tmp) / artifact.filename)
            else:
                made = convert_paddle_dir_to_onnx(dirs[variant], Path(tmp) / kind).path
            written.append(publish(artifact, made, root))
    return written


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("dir", type=Path, help="mirror root to write (upstream path layout)")
    args = ap.parse_args()
    for path in build_demo_mirror(args.dir):
        print(path)


if __name__ == "__main__":
    main()
