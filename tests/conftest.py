"""Every test starts from the same environment, whatever the developer's shell or CI sets.

- No ``PICOZOO_*`` variable: a test sets the settings it needs (``monkeypatch.setenv`` or a
  subprocess's ``env``), except quick retry back-offs (``PICOZOO_BACKOFF=0.01``).
- The platform's user cache (``XDG_CACHE_HOME``, where picozoo's default cache lives when
  ``PICOZOO_CACHE`` is unset) is a fresh folder per test, never the developer's own.
- OpenVINO's usage telemetry is not loaded (``import openvino`` would post an event from a
  background process; picozoo's own imports go through ``runtime.openvino.import_openvino``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

if "openvino" not in sys.modules:
    sys.modules.setdefault("openvino_telemetry", None)  # type: ignore[arg-type]


def pytest_ignore_collect(collection_path: Path) -> bool | None:
    """conftest.py files are loaded as conftests, not collected for doctests (they have none,
    and each is imported as the same module name, ``conftest``: collecting them for doctests
    failed with "import file mismatch", depending on the order of the paths given)."""
    return True if collection_path.name == "conftest.py" else None


def _clean(mp: pytest.MonkeyPatch, cache_home: Path) -> None:
    for name in [k for k in os.environ if k.startswith("PICOZOO_")]:
        mp.delenv(name)
    mp.setenv("PICOZOO_BACKOFF", "0.01")
    mp.setenv("XDG_CACHE_HOME", str(cache_home))


@pytest.fixture(autouse=True, scope="session")
def _clean_session_environment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """For session and module fixtures (set up before any test's own fixtures)."""
    with pytest.MonkeyPatch.context() as mp:
        _clean(mp, tmp_path_factory.mktemp("xdg-cache-session"))
        yield


@pytest.fixture(autouse=True)
def _clean_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """For each test (whatever an earlier test left in ``os.environ``)."""
    _clean(monkeypatch, tmp_path_factory.mktemp("xdg-cache"))
