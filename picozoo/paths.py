"""Where picozoo keeps things on disk.

>>> str(default_cache_dir({"PICOZOO_CACHE": "/tmp/zoo"}))
'/tmp/zoo'
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

ENV_CACHE = "PICOZOO_CACHE"


def default_cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``$PICOZOO_CACHE``, else the platform cache dir (XDG on Linux) + ``/picozoo``."""
    env = os.environ if environ is None else environ
    if env.get(ENV_CACHE):
        return Path(env[ENV_CACHE]).expanduser()
    if sys.platform == "win32":
        base = Path(env.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "picozoo"
