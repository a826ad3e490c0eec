"""Shared settings of the solver tests: a tiny configuration and random network parameters."""

import jax
import pytest

from stackjax import SolverConfig

TINY = SolverConfig(
    num_steps=20, chunk_size=10, batch_size=32, refine_steps=0, diagnostic_points=0,
    verbose=False,
)  # fmt: skip


@pytest.fixture
def tiny() -> SolverConfig:
    """20 Adam steps of 32 points, no refinement, no diagnostics, silent."""
    return TINY


@pytest.fixture
def random_params():
    """``random_params(like, scale=0.05)``: random parameters shaped like ``like`` (so that the
    networks' Hessians are not zero)."""

    def draw(like, scale=0.05):
        leaves, tree = jax.tree.flatten(like)
        keys = jax.random.split(jax.random.key(1), len(leaves))
        return jax.tree.unflatten(
            tree,
            [scale * jax.random.normal(k, p.shape, p.dtype) for k, p in zip(keys, leaves)],
        )

    return draw
