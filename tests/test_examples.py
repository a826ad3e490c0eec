"""Built-in examples: well posed, and the controlled-diffusion one parabolic where it is evaluated."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import stackjax as sj


def _parabolicity_margin(game, sol, t, x, directions):
    """min over regimes and unit directions xi of min Re eig A(xi), where
    A_{kk'}(xi) = d/de H*_k(..., M_{k'} + e xi xi^T, ...) at the Riccati solution (docs/math.md §5.4)."""
    grads = jax.jacrev(lambda z: sol.value(t, z))(x)  # [2, m, d]
    hess = jax.hessian(lambda z: sol.value(t, z))(x)  # [2, m, d, d]

    def per_regime(i):
        coef = game.coefficients(x, i)

        def hamiltonian(M):
            pre = sj.pre_hamiltonian(coef, grads[:, i], sj.hessian_products(M, coef))
            return sj.pointwise_equilibrium(pre, game.temperatures).hamiltonian

        def symbol_margin(xi):
            E = jnp.outer(xi, xi)
            zero = jnp.zeros_like(E)
            columns = [
                jax.jvp(
                    hamiltonian, (hess[:, i],), (jnp.stack([E, zero] if kp == 0 else [zero, E]),)
                )[1]
                for kp in range(2)
            ]
            return jnp.min(jnp.real(jnp.linalg.eigvals(jnp.stack(columns, axis=1))))

        return jnp.min(jax.vmap(symbol_margin)(directions))

    return jnp.min(jax.vmap(per_regime)(jnp.arange(game.num_regimes)))


@pytest.mark.parametrize("scale", [1.0, 2.0])
def test_controlled_diffusion_example_is_parabolic_on_the_evaluation_distribution(scale):
    game = sj.examples.controlled_diffusion_game()
    sol = sj.riccati_reference(game, num_times=21)
    key = jax.random.key(0)
    t = jax.random.uniform(key, (256,)) * game.T
    x = game.x0[None, :] + scale * jax.random.normal(
        jax.random.fold_in(key, 1), (256, game.state_dim)
    )
    xi = jax.random.normal(jax.random.fold_in(key, 2), (64, game.state_dim))
    xi = xi / jnp.linalg.norm(xi, axis=1, keepdims=True)
    margins = jax.jit(jax.vmap(lambda t_, x_: _parabolicity_margin(game, sol, t_, x_, xi)))(t, x)
    # Isotropic uncontrolled noise 0.6 contributes 0.6^2 / 2 = 0.18 to both diagonal entries.
    assert float(margins.min()) > 0.1, float(margins.min())


@pytest.mark.slow
@pytest.mark.parametrize(
    "name", sorted(set(sj.examples.EXAMPLES) - set(sj.examples.NON_LQ_EXAMPLES))
)
def test_examples_are_well_posed_along_their_riccati_solution(name):
    game = sj.examples.make_example(name)
    sol = sj.riccati_reference(game, num_times=11)
    margins = jax.vmap(lambda t: sol.gains(t, with_margins=True).margins)(sol.times)
    finite = np.asarray(margins)[np.isfinite(np.asarray(margins))]
    assert finite.min() > 0.05, finite.min()
    assert sol.value(0.0, game.x0).shape == (2, game.num_regimes)


def test_random_game_is_the_same_in_float32_and_float64():
    """The draw does not depend on the float mode: float32 arrays equal the float64 ones up to
    float32 rounding (relative 1e-6 of each array's largest entry)."""
    with jax.enable_x64(False):
        g32 = sj.examples.random_game(jax.random.key(3), d=4, m=2, controlled_diffusion=True)
    g64 = sj.examples.random_game(jax.random.key(3), d=4, m=2, controlled_diffusion=True)
    leaves32, leaves64 = jax.tree.leaves(g32), jax.tree.leaves(g64)
    assert len(leaves32) == len(leaves64)
    for a, b in zip(leaves32, leaves64, strict=True):
        a, b = np.asarray(a), np.asarray(b)
        if np.issubdtype(b.dtype, np.floating):
            assert a.dtype == np.float32 and b.dtype == np.float64
            scale = max(np.max(np.abs(b)), 1e-30)
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-6 * scale)
