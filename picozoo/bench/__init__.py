"""Latency benchmarks of PicoDet models on ONNX Runtime, Paddle Inference, OpenVINO, MNN and
ncnn, at each engine's precisions, with the mAP ``picozoo eval`` measured beside the claims.

The public API is one call, :func:`run` (what ``picozoo bench`` does): models in, a
``picozoo.bench/1`` :class:`~.records.Document` out; :func:`~.report.render` renders it and
:func:`~.records.load_document` reads a saved one.

The pieces, one concern each:

- :mod:`.api`: :func:`run`, the whole benchmark as one call;
- :mod:`.records`: the typed records (spec, measurement, cell, document) and the versioned
  ``picozoo.bench/1`` JSON they read (validating it) and write; :mod:`.fields` reads JSON;
- :mod:`.stats`: summary statistics and the stability check of a list of timings;
- :mod:`.worker`: the measured loop on :mod:`picozoo.runtime`, run as
  ``python -m picozoo.bench.worker`` in a fresh process;
- :mod:`.runner`: starts one worker per (model, engine, precision, threads) cell and reads its
  result;
- :mod:`.engines`: which (engine, precision) pairs run (``--engine all``, ``--precision``);
- :mod:`.targets`: turns model ids / file paths into benchmark targets (``--source``: upstream's
  ONNX or a converted one; OpenVINO/MNN/ncnn: the file converted for them);
- :mod:`.evals`: the cached ``picozoo eval`` result of a benched file (measured mAP);
- :mod:`.suite`: runs every cell of a benchmark into one document;
- :mod:`.environment`: CPU, cores (and the ones this process may use) and runtime versions;
- :mod:`.report` / :mod:`.compare` / :mod:`.notes` / :mod:`.plot` / :mod:`.merge`: tables, the
  cross-engine table, footnotes, plots and multi-device merges; :mod:`.output`: writes them
  without losing measured work.

This package is light: heavy modules (numpy, onnxruntime, paddle, pandas, matplotlib) are
imported inside the functions that need them.

>>> from picozoo.bench.records import SCHEMA
>>> SCHEMA
'picozoo.bench/1'
"""

from __future__ import annotations

from .api import run

__all__ = ["run"]
