"""Time `picozoo convert` next to the raw `paddle2onnx` + `onnxsim` command lines.

Run:  python benchmarks/bench_convert.py [--repeat 5] [--model legacy-big|legacy-sf]

Builds a Paddle inference model once (tests/support/paddle_models.py; default ``legacy-big``:
16 depthwise-separable blocks, 96 channels, 320x320, image + scale_factor, model.pdmodel like
upstream tarballs), then runs, interleaved, each in a fresh process:

* ``picozoo convert DIR`` with an empty cache (paddle2onnx + onnxsim + onnx.checker + the parity
  check through Paddle Inference and ONNX Runtime);
* ``paddle2onnx --model_dir ... --opset_version 11 --optimize_tool None`` then
  ``onnxsim in.onnx out.onnx`` (what the upstream docs tell users to run; no parity check);
* ``picozoo convert DIR`` again on the warm cache (the "identical re-run is instant" path).

Prints the median wall time of each and the ratios.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from support.paddle_models import build_models  # noqa: E402


def _bin(name: str) -> str:
    local = Path(sys.executable).parent / name
    return str(local) if local.exists() else name


def _timed(cmd: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--model", default="legacy-big", choices=["legacy-big", "legacy-sf", "pir-sf"])
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_convert-"))
    try:
        src = build_models(work / "models", [args.model])[args.model]
        env = {**os.environ, "GLOG_minloglevel": "2"}
        picozoo = [sys.executable, "-m", "picozoo", "convert", str(src), "--to", "onnx"]
        raw_p2o = [
            _bin("paddle2onnx"),
            "--model_dir", str(src),
            "--model_filename", "model.pdmodel" if "legacy" in args.model else "model.json",
            "--params_filename", "model.pdiparams",
            "--save_file", str(work / "raw.onnx"),
            "--opset_version", "11",
            "--optimize_tool", "None",
        ]  # fmt: skip
        raw_sim = [_bin("onnxsim"), str(work / "raw.onnx"), str(work / "raw_sim.onnx")]
        warm_cache = work / "warm-cache"
        _timed(picozoo, {**env, "PICOZOO_CACHE": str(warm_cache)})  # fill the warm cache
        times: dict[str, list[float]] = {"picozoo": [], "raw": [], "picozoo cached": []}
        for i in range(args.repeat):
            cold = work / f"cold-cache-{i}"
            times["picozoo"].append(_timed(picozoo, {**env, "PICOZOO_CACHE": str(cold)}))
            times["raw"].append(_timed(raw_p2o, env) + _timed(raw_sim, env))
            times["picozoo cached"].append(
                _timed(picozoo, {**env, "PICOZOO_CACHE": str(warm_cache)})
            )
        med = {k: statistics.median(v) for k, v in times.items()}
        print(f"model: {args.model} ({src}), {args.repeat} interleaved repeats, fresh processes")
        print(f"picozoo convert (cold cache, incl. parity) median {med['picozoo']:6.2f} s")
        print(f"paddle2onnx + onnxsim CLIs (no parity)    median {med['raw']:6.2f} s")
        print(f"picozoo convert (cache hit)               median {med['picozoo cached']:6.2f} s")
        print(f"ratio picozoo / raw        {med['picozoo'] / med['raw']:5.2f}")
        print(f"ratio cache hit / raw      {med['picozoo cached'] / med['raw']:5.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
