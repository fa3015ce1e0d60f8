"""Build a local mirror with stand-in PicoDet-S-416 inference tarballs in the upstream layout.

The upstream host cannot be reached from every machine (CI here has no internet). This script
writes ``deploy/Inference/picodet_s_416_coco_lcnet{,_non_postprocess}.tar`` under DIR, each a
real Paddle inference model (legacy ``model.pdmodel`` format, like upstream's) with a
PicoDet-sized backbone (16 depthwise-separable blocks, 416x416 input) and random weights. They
are stand-ins: the files are not upstream's, so mAP means nothing, but pull, verify, convert
and bench do real work on them.

Usage (from the repository root)::

    python tests/support/demo_mirror.py /tmp/demo-mirror
    python -m http.server -d /tmp/demo-mirror 8000 &        # or use file:///tmp/demo-mirror
    PICOZOO_MIRROR=http://127.0.0.1:8000 picozoo pull picodet-s-416 --artifact inference-nopp
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
VARIANT_OF_KIND = {"inference": "legacy-demo416", "inference-nopp": "legacy-demo416-nopp"}


def build_demo_mirror(root: Path) -> list[Path]:
    """Write the stand-in tarballs of ``picodet-s-416`` under ``root``; return their paths."""
    model = load_registry().get(MODEL)
    written = []
    with tempfile.TemporaryDirectory() as tmp:
        dirs = build_models(Path(tmp), list(VARIANT_OF_KIND.values()))
        for kind, variant in VARIANT_OF_KIND.items():
            artifact = model.artifact(kind)
            tar = make_inference_tarball(dirs[variant], Path(tmp) / artifact.filename)
            written.append(publish(artifact, tar, root))
    return written


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("dir", type=Path, help="mirror root to write (upstream path layout)")
    args = ap.parse_args()
    for path in build_demo_mirror(args.dir):
        print(path)


if __name__ == "__main__":
    main()
