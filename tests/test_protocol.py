"""`make_game` and `GameBase`: a game written as two functions equals the same `LQGame`."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import stackjax as sj


def _functional_copy(lq: sj.LQGame, **hooks) -> sj.FunctionalGame:
    """The LQ game written as two functions of (x, regime, params) with its arrays as params."""
    arrays = {k: v for k, v in lq.to_dict().items() if k not in ("zero_sum", "T", "lam", "x0")}

    def coefficients(x, i, p):
        return sj.Coefficients(
            beta=p["A"][i] @ x + p["b"][i], B1=p["B1"][i], B2=p["B2"][i],
            c=p["C"][i] @ x + p["s"][i], D1=p["D1"][i], D2=p["D2"][i],
            f0=jnp.einsum("d,kde,e->k", x, p["Q"][:, i], x) + 2.0 * p["q"][:, i] @ x,
            w1=p["S1"][:, i] @ x + p["r1"][:, i], w2=p["S2"][:, i] @ x + p["r2"][:, i],
            R11=p["R11"][:, i], R12=p["R12"][:, i], R22=p["R22"][:, i],
        )  # fmt: skip

    def terminal_cost(x, i, p):
        G = p["G"][:, i]
        return jnp.einsum("d,kde,e->k", x, G, x) + 2.0 * p["g"][:, i] @ x + p["g0"][:, i]

    return sj.make_game(
        horizon=lq.T, generator=lq.Gamma, temperatures=lq.lam, initial_state=lq.x0,
        coefficients=coefficients, terminal_cost=terminal_cost, params=arrays,
        zero_sum=lq.zero_sum, **hooks,
    )  # fmt: skip


@pytest.mark.slow
def test_functional_game_derives_dimensions_and_matches_lq_residuals():
    lq = sj.examples.random_game(jax.random.key(2), d=3, m=2, controlled_diffusion=True)
    game = _functional_copy(lq)
    dims = ("num_regimes", "state_dim", "leader_dim", "follower_dim", "noise_dim")
    assert [getattr(game, n) for n in dims] == [getattr(lq, n) for n in dims]
    assert not game.zero_sum and game.has_controlled_diffusion and not game.quadratic_value
    reference = sj.riccati_reference(lq)
    for t, x in [(0.2, lq.x0 + 0.3), (0.7, lq.x0 - 1.1)]:
        r_lq = sj.hjbi_residual(reference.value, lq, t, x)
        r_fn = sj.hjbi_residual(reference.value, game, t, x)
        np.testing.assert_allclose(r_fn, r_lq, rtol=1e-12, atol=1e-12)
        # At the Riccati solution the residual vanishes (to the ODE solver's accuracy).
        scale = float(jnp.max(jnp.abs(jax.jacfwd(reference.value)(jnp.asarray(t), x))))
        assert float(jnp.max(jnp.abs(r_fn))) <= 1e-6 * max(scale, 1.0)


@pytest.mark.slow
def test_functional_game_solves_like_the_lq_game():
    """`solve` of the functional copy gives the LQ game's solution (same key, same settings:
    only the hooks decide the network, so ``quadratic_value=True`` is passed)."""
    lq = sj.examples.scalar_game()
    game = _functional_copy(lq, quadratic_value=True, has_controlled_diffusion=False)
    config = sj.SolverConfig(
        gauss_newton=sj.GaussNewtonConfig(steps=3, batch_size=64, cg_iterations=10)
    )
    a = sj.solve(lq, jax.random.key(0), config, verbose=False, diagnostic_points=0)
    b = sj.solve(game, jax.random.key(0), config, verbose=False, diagnostic_points=0)
    np.testing.assert_allclose(b.history["refine_loss"], a.history["refine_loss"], rtol=1e-9)
    np.testing.assert_allclose(b.value(0.1, lq.x0), a.value(0.1, lq.x0), rtol=1e-9)


def test_game_base_subclass_needs_only_data_and_two_methods():
    from flax import struct

    class Drift(sj.GameBase, struct.PyTreeNode):  # dx = (u1 + u2) dt + dW, costs |u|^2
        horizon: jax.Array
        generator: jax.Array
        temperatures: jax.Array
        initial_state: jax.Array

        def coefficients(self, x, i):
            d = x.shape[0]
            eye = jnp.eye(d, dtype=x.dtype)
            return sj.Coefficients(
                beta=0 * x, B1=eye, B2=eye, c=eye, D1=jnp.zeros((d, d, d)),
                D2=jnp.zeros((d, d, d)), f0=jnp.zeros(2), w1=jnp.zeros((2, d)),
                w2=jnp.zeros((2, d)), R11=jnp.stack([eye, 0 * eye]),
                R12=jnp.zeros((2, d, d)), R22=jnp.stack([0 * eye, eye]),
            )  # fmt: skip

        def terminal_cost(self, x, i):
            return jnp.stack([x @ x, x @ x])

    game = Drift(jnp.asarray(1.0), jnp.zeros((1, 1)), jnp.asarray([0.1, 0.1]), jnp.ones(3))
    assert (game.num_regimes, game.state_dim, game.leader_dim, game.noise_dim) == (1, 3, 3, 3)
    game.validate()
    with pytest.raises(ValueError, match="generator"):
        game.replace(generator=jnp.asarray([[1.0]])).validate()
    with pytest.raises(ValueError, match="temperatures"):
        game.replace(temperatures=jnp.asarray([-0.1, 0.1])).validate()


@pytest.mark.parametrize(
    "changes, error, name",
    [
        (dict(horizon=-1.0), ValueError, "horizon"),
        (dict(horizon="1.0"), TypeError, "horizon"),
        (dict(generator=[[0.0, 1.0], [1.0, -1.0]]), ValueError, "generator"),
        (dict(temperatures=[0.1]), ValueError, "temperatures"),
        (dict(initial_state=[[0.0]]), ValueError, "initial_state"),
        (dict(coefficients=3), TypeError, "coefficients"),
        (dict(zero_sum="no"), TypeError, "zero_sum"),
        (dict(terminal_cost=lambda x, i: x[:1]), ValueError, "terminal_cost"),
    ],
)
def test_make_game_refuses_bad_input_naming_it(changes, error, name):
    lq = sj.examples.scalar_game()
    good = dict(
        horizon=1.0, generator=lq.Gamma, temperatures=[0.1, 0.1], initial_state=[0.0],
        coefficients=lq.coefficients, terminal_cost=lq.terminal_cost,
    )  # fmt: skip
    sj.make_game(**good)
    with pytest.raises(error, match=name):
        sj.make_game(**{**good, **changes})
