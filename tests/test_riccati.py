"""Riccati reference against closed forms, structural identities and the HJB residual (docs/math.md §7)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate

import stackjax as sj
from stackjax.examples import cross_term_game, random_game, scalar_game, zero_sum_game


def _scalar_lqr(a, b, sigma, q, r, g, lam1, T):
    """One-regime game where only the leader controls: a classical scalar LQR for the leader."""
    two = lambda leader, follower: np.array([leader, follower], float).reshape(2, 1, 1, 1)  # noqa: E731
    return sj.make_lq_game(
        T=T, Gamma=[[0.0]], A=[[[a]]], B1=[[[b]]], B2=[[[0.0]]], s=[[[sigma]]],
        Q=two(q, 0.0), R11=two(r, 0.0), R22=two(0.0, 1.0), G=two(g, 0.0),
        g0=np.array([[0.3], [0.0]]), lam=(lam1, 0.5),
    )  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("a,b,sigma,q,r,g,lam1", [(-0.5, 1.0, 0.3, 1.0, 0.5, 2.0, 0.4),
                                                  (0.3, 2.0, 0.7, 2.0, 1.5, 0.0, 0.0)])  # fmt: skip
def test_scalar_lqr_closed_form(a, b, sigma, q, r, g, lam1):
    """P solves -P' = q + 2aP - (b^2/r) P^2 in closed form; c by quadrature of -c' = s^2 P + eps."""
    T = 1.5
    sol = sj.riccati_reference(_scalar_lqr(a, b, sigma, q, r, g, lam1, T), num_times=31)
    beta = b * b / r
    root = np.sqrt(a * a + beta * q)
    p_plus, p_minus = (a + root) / beta, (a - root) / beta

    def P_exact(t):
        K = (g - p_plus) / (g - p_minus)
        e = np.exp(-beta * (p_plus - p_minus) * (T - t))
        return (p_plus - K * e * p_minus) / (1 - K * e)

    times = np.asarray(sol.times)
    np.testing.assert_allclose(np.asarray(sol.P[:, 0, 0, 0, 0]), P_exact(times), rtol=1e-10)
    eps = -0.5 * lam1 * np.log(np.pi * lam1 / r) if lam1 > 0 else 0.0
    c0 = 0.3 + integrate.quad(lambda t: sigma**2 * P_exact(t) + eps, 0.0, T, epsabs=1e-13)[0]
    np.testing.assert_allclose(float(sol.c[0, 0, 0]), c0, rtol=1e-10)
    # The follower does not act and is not acted upon beyond its entropy: mean 0.
    policy = sol.policy(0.2, jnp.array([0.7]))
    np.testing.assert_allclose(policy.mean_follower, 0.0, atol=1e-14)
    np.testing.assert_allclose(policy.mean_leader[0, 0], -b / r * P_exact(0.2) * 0.7, rtol=1e-9)


def test_identical_regimes_equal_one_regime():
    one = random_game(jax.random.key(5), d=3, m=1, controlled_diffusion=True, lam=(0.3, 0.2))
    m = 3
    rates = np.array([[-1.0, 0.6, 0.4], [0.2, -0.5, 0.3], [1.0, 1.0, -2.0]])
    symbols = {k: np.asarray(v) for k, v in one.to_dict().items() if k != "zero_sum"}
    many = {}
    for name, value in symbols.items():
        if name in ("T", "lam", "x0"):
            many[name] = value
        elif name in ("A", "B1", "B2", "b", "C", "D1", "D2", "s"):
            many[name] = np.repeat(value, m, axis=0)
        elif name != "Gamma":
            many[name] = np.repeat(value, m, axis=1)
    game = sj.make_lq_game(Gamma=rates, **many)
    a = sj.riccati_reference(one, num_times=5)
    b = sj.riccati_reference(game, num_times=5)
    for i in range(m):
        np.testing.assert_allclose(b.P[:, :, i], a.P[:, :, 0], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(b.c[:, :, i], a.c[:, :, 0], rtol=1e-10, atol=1e-12)


@pytest.mark.slow
def test_stackelberg_equals_nash_without_reaction_and_differs_with_cross_term():
    base = cross_term_game()
    symbols = base.to_dict()
    no_cross = np.array(symbols["R12"])
    no_cross[1] = 0.0  # follower cross term off; D = 0, so Lambda = 0
    game = sj.make_lq_game(**{**symbols, "R12": no_cross})
    st, na = (sj.riccati_reference(game, concept=c, num_times=11) for c in ("stackelberg", "nash"))
    np.testing.assert_allclose(st.P, na.P, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(st.c, na.c, rtol=1e-12, atol=1e-13)
    st, na = (sj.riccati_reference(base, concept=c, num_times=11) for c in ("stackelberg", "nash"))
    x0 = base.x0
    v_st, v_na = st.value(0.0, x0), na.value(0.0, x0)
    assert float(jnp.abs(v_st[0] - v_na[0]).min()) > 1e-2, (v_st, v_na)
    # The Stackelberg leader does at least as well as in Nash at the same state (it moves first).
    assert bool(jnp.all(v_st[0] <= v_na[0] + 1e-12))


@pytest.mark.slow
def test_zero_sum_stackelberg_equals_nash_and_values_are_opposite():
    game = zero_sum_game()
    st, na = (sj.riccati_reference(game, concept=c, num_times=11) for c in ("stackelberg", "nash"))
    np.testing.assert_allclose(st.P, na.P, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(st.c, na.c, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(st.P[:, 1], -st.P[:, 0], rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(st.c[:, 1], -st.c[:, 0], rtol=1e-12, atol=1e-13)


@pytest.mark.slow
def test_zero_sum_differs_from_general_sum_only_in_constants():
    """docs/math.md §6: with f2 = -f1 as a general-sum game, P and p agree, c differs (entropy book-keeping)."""
    zs = zero_sum_game()
    gs = sj.make_lq_game(**{**zs.to_dict(), "zero_sum": False})
    a, b = sj.riccati_reference(zs, num_times=11), sj.riccati_reference(gs, num_times=11)
    np.testing.assert_allclose(a.P, b.P, rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(a.p, b.p, rtol=1e-11, atol=1e-12)
    assert float(jnp.abs(a.c[0] - b.c[0]).max()) > 1e-3


# -- Residual of the Riccati value function -----------------------------------------------------
@functools.cache
def _residual_fn(concept):
    def residuals(sol, ts, xs):
        return jax.vmap(lambda t, x: sj.hjbi_residual(sol.value, sol.game, t, x, concept=concept))(
            ts, xs
        )

    return jax.jit(residuals)


# An orthogonal array of strength 2 (L9): every pair of levels of any two of the factors d, m,
# controlled diffusion and concept occurs in at least one of the nine cases.
_L9 = [(0, 0, 0, 0), (0, 1, 1, 1), (0, 2, 2, 2), (1, 0, 1, 2), (1, 1, 2, 0), (1, 2, 0, 1),
       (2, 0, 2, 1), (2, 1, 0, 2), (2, 2, 1, 0)]  # fmt: skip
_CASES = [
    ((1, 3, 10)[a], (1, 2, 4)[b], bool(c % 2), ("stackelberg", "nash")[e % 2]) for a, b, c, e in _L9
]


@pytest.mark.slow
@pytest.mark.parametrize("d,m,controlled,concept", _CASES)
def test_residual_of_riccati_solution_vanishes(d, m, controlled, concept):
    """|R_{k,i}| < 1e-8 (float64, relative to 1 + max|V|) at random points, temperatures 0 and > 0:
    the hand-derived Riccati right-hand side and the pointwise-equilibrium Hamiltonian agree.

    The cases form an orthogonal array over (d, m, controlled, concept): every pair of levels of
    two factors is checked (each case is a separate compilation).
    """
    key = jax.random.key(100 * d + 10 * m + controlled)
    game = random_game(key, d=d, m=m, controlled_diffusion=controlled, lam=(0.3, 0.2))
    ts = jax.random.uniform(jax.random.fold_in(key, 1), (16,)) * game.T
    xs = game.x0[None, :] + jax.random.normal(jax.random.fold_in(key, 2), (16, d))
    worst = 0.0
    for lam in ((0.3, 0.2), (0.0, 0.0), (0.0, 0.7)):
        sol = sj.riccati_reference(game.replace_temperatures(lam), concept=concept, num_times=9)
        r = _residual_fn(concept)(sol, ts, xs)
        scale = 1.0 + float(jnp.abs(jax.vmap(sol.value)(ts, xs)).max())
        worst = max(worst, float(jnp.abs(r).max()) / scale)
    assert worst < 1e-8, worst


@pytest.mark.slow
def test_time_derivative_matches_finite_differences_of_the_integrated_solution():
    """The ODE right-hand side (used as dV/dt) against 4th-order central differences of the
    integrated coefficients on a fine grid: checks the integration, not just the algebra."""
    game = random_game(jax.random.key(11), d=3, m=2, controlled_diffusion=True, lam=(0.3, 0.2))
    sol = sj.riccati_reference(game, num_times=401)
    h = float(sol.times[1] - sol.times[0])
    for values, rates in ((sol.P, sol.dP), (sol.p, sol.dp), (sol.c, sol.dc)):
        v = np.asarray(values)
        fd = (-v[4:] + 8 * v[3:-1] - 8 * v[1:-3] + v[:-4]) / (12 * h)
        np.testing.assert_allclose(
            fd, np.asarray(rates)[2:-2], rtol=0, atol=1e-7 * (1 + np.abs(v).max())
        )


# -- Temperatures -------------------------------------------------------------------------------
@pytest.mark.slow
def test_P_and_p_do_not_depend_on_temperature_and_covariances_scale_linearly():
    """docs/math.md §7.5, with controlled diffusion (so the covariances are time dependent)."""
    game = random_game(jax.random.key(2), d=3, m=2, controlled_diffusion=True, lam=(0.3, 0.2))
    base = np.array([0.3, 0.2])
    factors = jnp.array([0.0, 0.5, 1.0, 2.0])

    def solve(f):
        sol = sj.riccati_reference(game.replace(lam=f * jnp.asarray(base)), num_times=9)
        g = jax.vmap(sol.gains)(sol.times)
        return sol.P, sol.p, sol.c, g.cov_leader, g.cov_follower, g.L1, g.l2

    P, p, c, cov1, cov2, L1, l2 = jax.vmap(solve)(
        factors
    )  # one compiled solve for all temperatures
    for arr in (P, p, L1, l2):
        np.testing.assert_allclose(arr, jnp.broadcast_to(arr[0], arr.shape), rtol=1e-11, atol=1e-12)
    np.testing.assert_array_equal(cov1[0], 0.0)
    for j, f in enumerate(np.asarray(factors)):
        np.testing.assert_allclose(cov1[j], f * cov1[2], rtol=1e-11, atol=1e-14)
        np.testing.assert_allclose(cov2[j], f * cov2[2], rtol=1e-11, atol=1e-14)
    assert float(jnp.abs(c[3] - c[0]).max()) > 1e-3  # only c depends on lambda


def test_constant_shift_closed_form_without_controlled_diffusion():
    """D = 0: c^lambda(t) - c^0(t) = int_t^T e^{Gamma (s - t)} eps ds with constant eps (§7.5)."""
    from scipy.linalg import expm

    game = scalar_game()
    lam = np.asarray(game.lam)
    sol, sol0 = (
        sj.riccati_reference(game, num_times=5),
        sj.riccati_reference(game.replace_temperatures((0.0, 0.0)), num_times=5),
    )
    R11, R22 = np.asarray(game.R11), np.asarray(game.R22)
    # eps_k (d1 = d2 = 1): own entropy -lam_k/2 log(pi lam_k / R_kk) + lam_k/2 ... written via Sigma.
    sig1, sig2 = lam[0] / (2 * R11[0, :, 0, 0]), lam[1] / (2 * R22[1, :, 0, 0])
    eps1 = (
        R11[0, :, 0, 0] * sig1
        + R22[0, :, 0, 0] * sig2
        - 0.5 * lam[0] * np.log(2 * np.pi * np.e * sig1)
    )
    eps2 = (
        R11[1, :, 0, 0] * sig1
        + R22[1, :, 0, 0] * sig2
        - 0.5 * lam[1] * np.log(2 * np.pi * np.e * sig2)
    )
    Gamma, T = np.asarray(game.Gamma), float(game.T)
    for k, eps in enumerate((eps1, eps2)):
        shift = integrate.quad_vec(lambda s: expm(Gamma * s) @ eps, 0.0, T, epsabs=1e-14)[0]
        np.testing.assert_allclose(np.asarray(sol.c[0, k] - sol0.c[0, k]), shift, rtol=1e-10)


# -- Differentiability and errors -----------------------------------------------------------------
@pytest.mark.slow
def test_grad_through_riccati_matches_central_differences():
    game = scalar_game()

    def objective(A00, cross, lam1):
        g = game.replace(
            A=game.A.at[0, 0, 0].set(A00), R12=game.R12.at[1, 1, 0, 0].set(cross),
            lam=game.lam.at[0].set(lam1),
        )  # fmt: skip
        sol = sj.riccati_reference(g, num_times=5)
        return sol.value(0.0, g.x0)[0, 0] + 0.5 * sol.value(0.0, g.x0)[1, 1]

    args = (game.A[0, 0, 0], game.R12[1, 1, 0, 0], game.lam[0])
    grads = jax.jit(jax.grad(objective, argnums=(0, 1, 2)))(*args)
    objective = jax.jit(objective)
    for j in range(3):
        h = 1e-5
        up = list(args)
        dn = list(args)
        up[j] = up[j] + h
        dn[j] = dn[j] - h
        fd = (objective(*up) - objective(*dn)) / (2 * h)
        np.testing.assert_allclose(grads[j], fd, rtol=1e-6, atol=1e-9)


@pytest.mark.slow
def test_finite_escape_raises_a_clear_error():
    two = lambda leader, follower: np.array([leader, follower], float).reshape(2, 1, 1, 1)  # noqa: E731
    game = sj.make_lq_game(
        T=5.0, Gamma=[[0.0]], A=[[[0.5]]], B1=[[[1.0]]], B2=[[[0.0]]], s=[[[0.1]]],
        Q=two(-4.0, 0.0), R11=two(1.0, 0.0), R22=two(0.0, 1.0), lam=(0.1, 0.1),
    )  # fmt: skip
    with pytest.raises(ValueError, match="no solution on"):
        sj.riccati_reference(game)


@pytest.mark.slow
def test_loss_of_well_posedness_along_the_solution_raises():
    """Controlled diffusion: Rt11_1 = R11 + D1^T P_1 D1 loses definiteness once P_1 < -R11 / D1^2
    (the leader's negative state cost drives P_1 = -2 (T - t) and it has no drift control)."""
    two = lambda leader, follower: np.array([leader, follower], float).reshape(2, 1, 1, 1)  # noqa: E731
    game = sj.make_lq_game(
        T=1.0, Gamma=[[0.0]], A=[[[0.0]]], B1=[[[0.0]]], B2=[[[1.0]]], s=[[[0.3]]],
        D1=[[[[1.0]]]], Q=two(-2.0, 1.0), R11=two(0.5, 0.1), R22=two(0.5, 0.5), lam=(0.1, 0.1),
    )  # fmt: skip
    with pytest.raises(ValueError, match="WP-L|no solution"):
        sj.riccati_reference(game)


def test_well_posedness_margins_follow_the_concept():
    """Margins against the cost matrices by hand (cross-term game: no controlled diffusion, so
    Rt = R; scalar controls): Stackelberg checks the follower's R22, the reduced leader
    curvature Rbar = R11 + 2 R12 Lam + R22_1 Lam^2 with Lam = -R21_2 / R22_2, and R11 (lambda_1
    > 0); Nash checks each player's own curvature (R22 of the follower, R11 of the leader) and
    has no reduced problem (+inf)."""
    game = cross_term_game()
    # [2 players, m] entries of the scalar cost blocks
    r11, r12, r22 = (np.asarray(a)[:, :, 0, 0] for a in (game.R11, game.R12, game.R22))
    lam = -r12[1] / r22[1]  # [m] the follower's reaction to the leader's mean
    rbar = r11[0] + 2 * r12[0] * lam + r22[0] * lam**2
    for concept, middle in (("stackelberg", rbar), ("nash", np.full(2, np.inf))):
        ref = sj.riccati_reference(game, num_times=5, concept=concept)
        margins = np.asarray(ref.gains(0.3, with_margins=True).margins)  # [m, 3]
        expected = np.stack([r22[1], middle, r11[0]], axis=1)
        np.testing.assert_allclose(margins, expected, rtol=1e-12, err_msg=concept)


def test_rejects_non_lq_game_and_bad_concept():
    with pytest.raises(ValueError, match="concept"):
        sj.riccati_reference(scalar_game(), concept="cournot")
    with pytest.raises(TypeError, match="LQGame"):
        sj.riccati_reference(object())


@pytest.mark.slow
def test_float32_by_default_in_a_fresh_process():
    """Without jax_enable_x64 everything runs in float32 and agrees with float64 to ~1e-5."""
    import subprocess
    import sys

    code = (
        "import jax, numpy as np, stackjax as sj\n"
        "g = sj.examples.cross_term_game()\n"
        "s = sj.riccati_reference(g, num_times=11)\n"
        "v = s.value(0.0, g.x0)\n"
        "print(v.dtype, *np.asarray(v).ravel())\n"
    )
    env = {k: v for k, v in __import__("os").environ.items() if k != "JAX_ENABLE_X64"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    dtype, *values = out.stdout.split()
    assert dtype == "float32"
    game = cross_term_game()
    ref = np.asarray(sj.riccati_reference(game, num_times=11).value(0.0, game.x0)).ravel()
    np.testing.assert_allclose(np.asarray(values, float), ref, rtol=2e-5)
