"""The Gauss-Newton refinement: its conjugate-gradient solver and the iterate it returns."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from stackjax import GaussNewtonConfig, LayoutConfig, SolverConfig, examples, solve
from stackjax._solver._gauss_newton import pcg
from stackjax._solver._step import sample_batch


@pytest.mark.parametrize("unroll", [1, 4, 12])
def test_pcg_solves_spd_system_for_any_unroll(unroll):
    """Jacobi-preconditioned CG on a 12 x 12 SPD system (condition number 10) reaches numpy's
    solve in 12 steps (exact arithmetic: n steps; float32 here); unrolling the loop (benchmarks' FLOP count) changes
    nothing but round-off."""
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(12, 12)))
    a = (q * np.linspace(1.0, 10.0, 12)) @ q.T  # condition number 10
    b = rng.normal(size=12)
    matvec = lambda v: jnp.asarray(a, jnp.float32) @ v  # noqa: E731
    x = pcg(matvec, jnp.asarray(b, jnp.float32), jnp.asarray(np.diag(a), jnp.float32), 12, unroll)
    np.testing.assert_allclose(np.asarray(x), np.linalg.solve(a, b), rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_solve_returns_the_best_gauss_newton_iterate():
    """The returned parameters score the smallest loss on the refinement's fixed evaluation
    batch among the iterates (recomputed here from the same batch, float64), and the history
    says which iterate it is."""
    game = examples.random_game(jax.random.key(4), d=2, m=2)
    config = SolverConfig(
        gauss_newton=GaussNewtonConfig(steps=6, batch_size=64, cg_iterations=3),
        layout=LayoutConfig(dtype="float64"),
    )
    key = jax.random.key(0)
    solution = solve(game, key, config, verbose=False, diagnostic_points=0)
    scores = np.asarray(solution.history["refine_evaluation_loss"])
    best = int(solution.history["refine_best"])
    assert scores.shape == (6,) and -1 <= best < 6
    # The evaluation batch: fold_in(refinement key, int32 max), as documented in `refine`.
    k_train = jax.random.split(key, 5)[1]
    k_refine = jax.random.fold_in(k_train, solution.config.adam.steps + 1)
    k_pts, k_op = jax.random.split(jax.random.fold_in(k_refine, np.iinfo(np.int32).max))
    batch = sample_batch(solution.game, solution.config, k_pts, k_op, 64)
    r, vec = solution.network.residual_vector(*batch)
    returned = float(jnp.sum(vec**2) / r.size)
    if best >= 0:
        np.testing.assert_allclose(returned, scores[best], rtol=1e-9)
    assert returned <= scores.min() * (1 + 1e-9)
