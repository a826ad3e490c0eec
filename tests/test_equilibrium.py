"""The Riccati solution is a feedback Stackelberg equilibrium (docs/math.md §5.2, §9.5-9.6).

Costs of arbitrary linear-Gaussian feedback policies are computed exactly by the forward
second-moment equations of docs/math.md §9.5 (an independent numpy/scipy implementation: forward in
time, on ``S_i = E[z z^T 1{alpha_t = i}]``), then:
1. at the equilibrium they reproduce ``V_{k,i0}(0, x0)``;
2. a follower deviation (mean feedback or covariance) raises the follower's cost at 2nd order;
3. a leader deviation answered by the follower's reaction map raises the leader's cost at 2nd order;
4. with the follower's feedback frozen instead, the leader's cost changes at 1st order (not Nash).
"""

import jax
import numpy as np
import pytest
from scipy.integrate import solve_ivp

import stackjax as sj
from stackjax.examples import controlled_diffusion_game, cross_term_game


def _expected_costs(game, feedback, x0, regime0, *, rtol=1e-11):
    """Exact [2] costs of the policies ``mu_a = -(L_a x + l_a)``, covariances ``Sigma_a``.

    ``feedback(t)`` returns numpy arrays ``(Lbar1 [m, k1, d+1], Lbar2 [m, k2, d+1],
    Sigma1 [m, k1, k1], Sigma2 [m, k2, k2])`` with ``Lbar_a = [L_a, l_a]``.
    """
    g = {k: np.asarray(v, float) for k, v in game.to_dict().items() if k != "zero_sum"}
    m, d = g["Gamma"].shape[0], g["A"].shape[-1]
    lam = g["lam"]
    e = np.zeros(d + 1)
    e[-1] = 1.0

    def pad(M):  # [d, d + 1] -> [d + 1, d + 1]
        return np.vstack([M, np.zeros((1, d + 1))])

    def rhs(t, y):
        S = y[: m * (d + 1) ** 2].reshape(m, d + 1, d + 1)
        Lb1, Lb2, Sig1, Sig2 = feedback(t)
        dS = np.zeros_like(S)
        dJ = np.zeros(2)
        for i in range(m):
            Ab = np.hstack([g["A"][i], g["b"][i][:, None]])
            F = pad(Ab - g["B1"][i] @ Lb1[i] - g["B2"][i] @ Lb2[i])
            Xi = np.zeros((d + 1, d + 1))
            diff = F @ S[i] + S[i] @ F.T
            for l in range(g["C"].shape[1]):
                Cb = np.hstack([g["C"][i, l], g["s"][i, l][:, None]])
                Gl = pad(Cb - g["D1"][i, l] @ Lb1[i] - g["D2"][i, l] @ Lb2[i])
                diff += Gl @ S[i] @ Gl.T
                Xi[:d, :d] += (
                    g["D1"][i, l] @ Sig1[i] @ g["D1"][i, l].T
                    + g["D2"][i, l] @ Sig2[i] @ g["D2"][i, l].T
                )
            diff += Xi * S[i][-1, -1]
            diff += sum(g["Gamma"][j, i] * S[j] for j in range(m))
            dS[i] = diff
            # Expected running cost z^T C z with xi = (x, u1, u2) = Tmat z.
            Tmat = np.vstack([np.eye(d, d + 1), -Lb1[i], -Lb2[i]])
            for k in range(2):
                M = np.block([
                    [g["Q"][k, i], g["S1"][k, i].T, g["S2"][k, i].T],
                    [g["S1"][k, i], g["R11"][k, i], g["R12"][k, i]],
                    [g["S2"][k, i], g["R12"][k, i].T, g["R22"][k, i]],
                ])  # fmt: skip
                lin = Tmat.T @ np.concatenate([g["q"][k, i], g["r1"][k, i], g["r2"][k, i]])
                const = np.trace(g["R11"][k, i] @ Sig1[i]) + np.trace(g["R22"][k, i] @ Sig2[i])
                for a, (lam_a, Sig) in enumerate(((lam[0], Sig1[i]), (lam[1], Sig2[i]))):
                    if lam_a > 0:
                        ent = -0.5 * lam_a * np.linalg.slogdet(2 * np.pi * np.e * Sig)[1]
                        sign = (
                            (1.0 if a == k else 0.0)
                            if not game.zero_sum
                            else (1.0 if a == 0 else -1.0) * (1.0 if k == 0 else -1.0)
                        )
                        const += sign * ent
                Cz = (
                    Tmat.T @ M @ Tmat + np.outer(e, lin) + np.outer(lin, e) + const * np.outer(e, e)
                )
                dJ[k] += np.sum(Cz * S[i])
        return np.concatenate([dS.ravel(), dJ])

    z0 = np.append(np.asarray(x0, float), 1.0)
    S0 = np.zeros((m, d + 1, d + 1))
    S0[regime0] = np.outer(z0, z0)
    T = float(g["T"])
    out = solve_ivp(rhs, (0.0, T), np.concatenate([S0.ravel(), np.zeros(2)]), method="DOP853",
                    rtol=rtol, atol=1e-13)  # fmt: skip
    S_T = out.y[: m * (d + 1) ** 2, -1].reshape(m, d + 1, d + 1)
    J = out.y[-2:, -1].copy()
    for i in range(m):
        for k in range(2):
            Gb = np.block(
                [[g["G"][k, i], g["g"][k, i][:, None]], [g["g"][k, i][None, :], g["g0"][k, i]]]
            )
            J[k] += np.sum(Gb * S_T[i])
    return J


def _equilibrium_feedback(sol):
    gains = jax.jit(sol.gains)

    def feedback(t):
        g = jax.tree.map(np.asarray, gains(t))
        Lb1 = np.concatenate([g.L1, g.l1[..., None]], axis=-1)
        Lb2 = np.concatenate([g.L2, g.l2[..., None]], axis=-1)
        Kb = np.concatenate([g.K, g.kappa0[..., None]], axis=-1)
        return Lb1, Lb2, g.cov_leader, g.cov_follower, Kb, g.Lambda

    return feedback


@pytest.fixture(scope="module", params=["cross-term", "controlled-diffusion"])
def setup(request):
    game = {"cross-term": cross_term_game, "controlled-diffusion": controlled_diffusion_game}[
        request.param
    ]()
    # Fine output grid: gains between grid points come from Hermite-interpolated P (error ~h^4).
    sol = sj.riccati_reference(game, num_times=201)
    return game, sol, _equilibrium_feedback(sol)


def test_moment_equations_reproduce_the_value(setup):
    game, sol, fb = setup
    for i0 in range(game.num_regimes):
        J = _expected_costs(game, lambda t: fb(t)[:4], game.x0, i0)
        np.testing.assert_allclose(
            J, np.asarray(sol.value(0.0, game.x0))[:, i0], rtol=1e-8, atol=1e-9
        )


def _deviation_curve(game, V, policy_at_eps, player, eps=(0.0, 1e-3, -1e-3, 0.05, 0.1)):
    """Cost changes at e = 0.05, 0.1 and the central-difference slope at e = +-1e-3."""
    costs = {
        e: _expected_costs(game, lambda t, e=e: policy_at_eps(t, e), game.x0, 0)[player]
        for e in eps
    }
    np.testing.assert_allclose(costs[0.0], V, rtol=1e-8)
    d1, d2 = costs[0.05] - V, costs[0.1] - V
    slope = (costs[1e-3] - costs[-1e-3]) / 2e-3
    return d1, d2, slope, costs


def test_follower_deviations_cost_the_follower_at_second_order(setup):
    game, sol, fb = setup
    V = float(sol.value(0.0, game.x0)[1, 0])
    rng = np.random.default_rng(0)
    delta = rng.normal(size=fb(0.0)[1].shape)

    def deviate(t, e):  # mean feedback and covariance (Sigma2 + e Sigma2 / 2 stays PD) together
        Lb1, Lb2, Sig1, Sig2, *_ = fb(t)
        return Lb1, Lb2 + e * delta, Sig1, Sig2 + 0.5 * e * Sig2

    d1, d2, slope, _ = _deviation_curve(game, V, deviate, 1)
    assert d1 > 0 and d2 > 0
    assert abs(slope) < 1e-5 * (1 + abs(V)), slope
    np.testing.assert_allclose(d2 / d1, 4.0, rtol=0.2)  # quadratic growth


def test_leader_deviations_against_the_reaction_cost_the_leader_at_second_order(setup):
    game, sol, fb = setup
    V = float(sol.value(0.0, game.x0)[0, 0])
    delta = np.random.default_rng(1).normal(size=fb(0.0)[0].shape)

    def deviate(t, e):
        Lb1, _, Sig1, Sig2, Kb, Lam = fb(t)
        Lb1 = Lb1 + e * delta
        return Lb1, Kb + Lam @ Lb1, Sig1, Sig2  # follower answers with its reaction map (§8)

    d1, d2, slope, _ = _deviation_curve(game, V, deviate, 0)
    assert d1 > 0 and d2 > 0
    assert abs(slope) < 1e-5 * (1 + abs(V)), slope
    np.testing.assert_allclose(d2 / d1, 4.0, rtol=0.2)


def test_leader_deviation_with_frozen_follower_has_a_first_order_effect(setup):
    """Stackelberg != Nash: against the frozen equilibrium feedback the leader is not optimal."""
    game, sol, fb = setup
    V = float(sol.value(0.0, game.x0)[0, 0])
    delta = np.random.default_rng(1).normal(size=fb(0.0)[0].shape)

    def deviate(t, e):
        Lb1, Lb2, Sig1, Sig2, *_ = fb(t)
        return Lb1 + e * delta, Lb2, Sig1, Sig2

    *_, slope, _ = _deviation_curve(game, V, deviate, 0)
    assert abs(slope) > 1e-3, slope
