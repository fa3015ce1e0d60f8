"""Fixtures for convert tests: the small Paddle models (built once per session) and a store."""

from __future__ import annotations

from pathlib import Path

import pytest

from picozoo.hub.store import Store
from picozoo.settings import Settings


@pytest.fixture(scope="session")
def paddle_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``{"pir", "pir-sf", "legacy", "legacy-sf", ...: model_dir}`` (see support.paddle_models)."""
    from support.paddle_models import build_models

    return build_models(tmp_path_factory.mktemp("paddle_models"))


@pytest.fixture(scope="session")
def interp_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from support.paddle_models import build_interp_model

    return build_interp_model(tmp_path_factory.mktemp("interp_model"))


@pytest.fixture
def store(tmp_path: Path) -> Store:
    """An empty store in ``tmp_path/cache`` (no mirrors, online)."""
    return Store(Settings(cache_dir=tmp_path / "cache"))
