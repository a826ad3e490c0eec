"""Test configuration: float64 (tolerances below assume it), strict rank promotion, 8 CPU devices,
and a test-only compilation setting that keeps the suite within its time budget."""

import os
import shutil
import tempfile

os.environ.setdefault("MPLBACKEND", "Agg")

# The suite is compile-bound (tiny problems, many distinct programs). LLVM optimisation level 0
# roughly halves XLA:CPU compile time and does not change floating-point semantics (no fast
# math either way). Set in the environment, so notebook kernels, the CLI and benchmark scripts
# started by the tests inherit it; an explicit setting in XLA_FLAGS wins.
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0"
    ).strip()
# One persistent compilation cache for the whole run (pytest-xdist workers and the processes
# the tests start inherit the directory): a program compiled by one of them is loaded by the
# others. Removed when the run ends.
_OWN_CACHE = "STACKJAX_TEST_COMPILE_CACHE" not in os.environ
if _OWN_CACHE:
    os.environ["STACKJAX_TEST_COMPILE_CACHE"] = tempfile.mkdtemp(prefix="stackjax-xla-cache-")
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.environ["STACKJAX_TEST_COMPILE_CACHE"])
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "1.0")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
try:  # Forced host devices for sharding tests; must happen before any backend is initialised.
    jax.config.update("jax_num_cpu_devices", 8)
except Exception:  # pragma: no cover - older JAX without this option
    pass

import pytest  # noqa: E402


@pytest.fixture
def key():
    return jax.random.key(0)


def pytest_unconfigure(config):
    """The process that created the run's compilation cache removes it."""
    if _OWN_CACHE:
        shutil.rmtree(os.environ["STACKJAX_TEST_COMPILE_CACHE"], ignore_errors=True)
