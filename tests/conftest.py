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

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")
try:  # Forced host devices for sharding tests; must happen before any backend is initialised.
    jax.config.update("jax_num_cpu_devices", 8)
except Exception:  # pragma: no cover - older JAX without this option
    pass

import pytest  # noqa: E402

from ._loops import long_loops  # noqa: E402  (lowers the loops' level for short runs)

#: Modules whose tests each run a whole program (a notebook kernel, a benchmark script, the CLI's
#: main job, README's blocks): 20-55 s per test.
_WHOLE_PROGRAMS = ("test_benchmarks.py", "test_notebook", "test_cli.py", "test_readme.py")


def pytest_collection_modifyitems(items):
    """Longest first: the modules of `_WHOLE_PROGRAMS` run before the others (each module's
    tests stay together and in order), so that under ``pytest -n 2`` the run does not end on
    one worker finishing a long test while the other idles."""
    items.sort(key=lambda item: not any(name in item.nodeid for name in _WHOLE_PROGRAMS))


@pytest.fixture(autouse=True)
def _loop_level(request):
    """Tests marked ``long_loops`` compile `loop_jit` programs at the library's level."""
    if request.node.get_closest_marker("long_loops") is None:
        yield
        return
    with long_loops():
        yield


@pytest.fixture
def key():
    return jax.random.key(0)
