"""The Gauss-Newton refinement's conjugate-gradient solver."""

import jax.numpy as jnp
import numpy as np
import pytest

from stackjax._solver._gauss_newton import pcg


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
