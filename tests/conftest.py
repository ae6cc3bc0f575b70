"""Shared set-up of the whole suite.

JAX's persistent compilation cache: many tests compile the same small programs (a tiny training
step, a model at a test grid) in separate processes (pytest-xdist workers, CLI subprocesses);
the cache lets the second and later compilations read the first one's result. It lives in the
checkout (``.jax_cache/``, ignored by git), so a fresh clone starts cold; set
``OPBAYES_TEST_JAX_CACHE=0`` to switch it off. The environment variables reach subprocesses too.
"""

import os
from pathlib import Path

if os.environ.get("OPBAYES_TEST_JAX_CACHE", "1") != "0":
    _cache = Path(__file__).resolve().parent.parent / ".jax_cache"
    os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(_cache))
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
