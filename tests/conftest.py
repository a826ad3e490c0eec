"""Test configuration: float64 (tolerances below assume it), strict rank promotion, 8 CPU devices."""

import os

os.environ.setdefault("MPLBACKEND", "Agg")

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
