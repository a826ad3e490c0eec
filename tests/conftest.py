"""Test configuration: float64 (tolerances below assume it), strict rank promotion, 8 CPU devices,
and a test-only compilation setting that keeps the suite within its time budget."""

import os

os.environ.setdefault("MPLBACKEND", "Agg")

# The suite is compile-bound (tiny problems, many distinct programs). LLVM optimisation level 0
# roughly halves XLA:CPU compile time; no fast math either way, but reductions may be ordered
# differently (round-off-level differences between programs, e.g. batched vs single). Set in the environment, so notebook kernels, the CLI and benchmark scripts
# started by the tests inherit it; an explicit setting in XLA_FLAGS wins.
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0"
    ).strip()

# The two pytest-xdist workers and the scripts the tests start compile many of the same programs;
# a persistent compilation cache shared by the whole run compiles each once. The controller
# creates it before the workers start (they inherit the environment) and removes it at exit.
# `STACKJAX_TEST_CACHE=0` turns it off (e.g. to time compilation).
if os.environ.get("STACKJAX_TEST_CACHE", "1") != "0" and "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    import atexit
    import shutil
    import tempfile

    _cache = tempfile.mkdtemp(prefix="stackjax-tests-jax-cache-")
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _cache
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"
    atexit.register(shutil.rmtree, _cache, True)

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")
try:  # Forced host devices for sharding tests; must happen before any backend is initialised.
    jax.config.update("jax_num_cpu_devices", 8)
except Exception:  # pragma: no cover - older JAX without this option
    pass

import pytest  # noqa: E402


@pytest.fixture
def key():
    return jax.random.key(0)
