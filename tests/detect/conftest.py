"""Fixtures for detection tests: PicoDet-like Paddle models at two input sizes, their
no-post-processing ONNX (converted and parity-checked by picozoo), and natural images."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

SIZES = [(320, 320), (224, 288)]


@pytest.fixture(scope="session", params=SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def picodet(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """``{"nopp", "pp", "pp-fast": dir, "onnx": nopp .onnx, "size": (H, W)}``."""
    from support.picodet_models import build_picodet

    from picozoo.convert import convert_paddle_dir_to_onnx

    root = tmp_path_factory.mktemp(f"picodet{request.param[0]}x{request.param[1]}")
    dirs: dict[str, Any] = dict(build_picodet(root, request.param))
    dirs["onnx"] = convert_paddle_dir_to_onnx(dirs["nopp"], root / "onnx").path
    dirs["size"] = request.param
    return dirs


@pytest.fixture(scope="session")
def natural_images() -> dict[str, np.ndarray]:
    """RGB photos shipped with scikit-image (three aspect ratios)."""
    data = pytest.importorskip("skimage.data")
    return {"astronaut": data.astronaut(), "coffee": data.coffee(), "chelsea": data.chelsea()}
