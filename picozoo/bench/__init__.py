"""Latency benchmarks of PicoDet models on ONNX Runtime and Paddle Inference.

The pieces, one concern each:

- :mod:`.stats`: summary statistics and the stability check of a list of timings;
- :mod:`.worker`: the measured loop, run as ``python -m picozoo.bench.worker`` in a fresh process;
- :mod:`.runner`: starts one worker per (model, engine, threads) cell and collects its result;
- :mod:`.targets`: turns model ids / file paths into benchmark targets;
- :mod:`.environment`: CPU, cores and runtime versions of this machine;
- :mod:`.results`: the versioned ``picozoo.bench/1`` JSON document and its validator;
- :mod:`.report` / :mod:`.plot` / :mod:`.merge`: tables, plots and multi-device merges.

This package is light: heavy modules (numpy, onnxruntime, paddle, pandas, matplotlib) are
imported inside the functions that need them.
"""

from __future__ import annotations

SCHEMA = "picozoo.bench/1"
ENGINES = ("onnxruntime", "paddle")
