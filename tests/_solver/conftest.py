"""Shared settings of the solver tests: a tiny configuration and random network parameters."""

import jax
import pytest

from stackjax import AdamConfig, GaussNewtonConfig, SolverConfig

TINY = SolverConfig(
    adam=AdamConfig(steps=20, batch_size=32), gauss_newton=GaussNewtonConfig(steps=0)
)
#: `solve`'s loop arguments of the tiny runs.
QUIET = {"chunk_size": 10, "diagnostic_points": 0, "verbose": False}


@pytest.fixture
def tiny() -> SolverConfig:
    """20 Adam steps of 32 points, no refinement."""
    return TINY


@pytest.fixture
def quiet() -> dict:
    """`solve` arguments: chunks of 10 steps, no diagnostics, silent."""
    return dict(QUIET)


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
