"""Exact LQ reference: the coupled regime-switching Riccati system (docs/math.md §7).

The right-hand side is derived by hand from §7.1-7.3 (it never calls the Hamiltonian code),
so that the residual of `hjbi_residual` at the Riccati value function is a genuine
cross-check of both. Integration runs backward from ``T`` with diffrax's 8th-order
Dormand-Prince method (float64: ``rtol = atol = 1e-12``) and is differentiable with respect to
the game's arrays.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from ._game import LQGame
from ._gibbs import GaussianPolicy
from ._hamiltonian import check_concept
from ._validation import check_setting, scalar_setting

__all__ = ["FeedbackGains", "RiccatiSolution", "riccati_reference", "riccati_rhs"]


class FeedbackGains(struct.PyTreeNode):
    """Equilibrium feedback in every regime at one time (docs/math.md §7.2, §8).

    ``mu_k = -(L_k x + l_k)``; follower reaction ``mu_2^BR = -(K x + kappa0) + Lambda mu_1``.

    Attributes:
      L1: [m, k1, d].  l1: [m, k1].  L2: [m, k2, d].  l2: [m, k2].
      K: [m, k2, d].  kappa0: [m, k2].  Lambda: [m, k2, k1].
      cov_leader: [m, k1, k1].  cov_follower: [m, k2, k2].
      margins: [m, 3] smallest eigenvalues of ``Rt^{22}_2`` (WP-F), ``Rbar`` (WP-L1) and
        ``Rt^{11}_1`` (WP-L2; +inf when ``lambda_1 = 0``). Nash (§4.6): ``Rbar`` is not
        used (+inf) and ``Rt^{11}_1`` is checked whatever ``lambda_1``.
    """

    L1: jax.Array
    l1: jax.Array
    L2: jax.Array
    l2: jax.Array
    K: jax.Array
    kappa0: jax.Array
    Lambda: jax.Array
    cov_leader: jax.Array
    cov_follower: jax.Array
    margins: jax.Array


def _sym(a):
    return 0.5 * (a + jnp.swapaxes(a, -1, -2))


def _chol_solve(a, b):
    factor = jnp.linalg.cholesky(_sym(a))
    return jax.scipy.linalg.cho_solve((factor, True), b)


def _regime_data(game: LQGame) -> dict[str, jax.Array]:
    """Per-regime arrays with the regime on the leading axis (cost arrays: [m, 2, ...])."""
    model = {name: getattr(game, name) for name in ("A", "B1", "B2", "b", "C", "D1", "D2", "s")}
    costs = {
        name: jnp.swapaxes(getattr(game, name), 0, 1)
        for name in ("Q", "S1", "S2", "R11", "R12", "R22", "q", "r1", "r2")
    }
    return {**model, **costs}


def _regime_terms(data, P, p, lam, concept: str, zero_sum: bool, with_margins: bool = False):
    """Feedback and the Riccati right-hand sides (without regime coupling) in one regime.

    Args:
      data: one regime's arrays (model [..], costs [2, ..]).
      P: [2, d, d], p: [2, d] current coefficients of both players.

    Returns:
      ``(gains, FP [2, d, d], Fp [2, d], Fc [2])`` with ``-dP/dt = FP + sum_j Gamma_ij P_j``.
    """
    k1 = data["B1"].shape[-1]
    B = jnp.concatenate([data["B1"], data["B2"]], axis=1)  # [d, K]
    D = jnp.concatenate([data["D1"], data["D2"]], axis=2)  # [n, d, K]
    S = jnp.concatenate([data["S1"], data["S2"]], axis=1)  # [2, K, d]
    r = jnp.concatenate([data["r1"], data["r2"]], axis=1)  # [2, K]
    R = jnp.concatenate(
        [
            jnp.concatenate([data["R11"], data["R12"]], axis=2),
            jnp.concatenate([jnp.swapaxes(data["R12"], 1, 2), data["R22"]], axis=2),
        ],
        axis=1,
    )  # [2, K, K]
    A, C, b, s = data["A"], data["C"], data["b"], data["s"]

    # §7.1: Rt = R + sum_l D^T P D, E = S + B^T P + sum_l D^T P C, e = r + B^T p + sum_l D^T P s.
    Rt = _sym(R + jnp.einsum("lda,kde,leb->kab", D, P, D))
    E = S + jnp.einsum("da,kde->kae", B, P) + jnp.einsum("lda,kde,lef->kaf", D, P, C)
    e = r + jnp.einsum("da,kd->ka", B, p) + jnp.einsum("lda,kde,le->ka", D, P, s)

    Rt11_1, Rt12_1, Rt22_1 = Rt[0, :k1, :k1], Rt[0, :k1, k1:], Rt[0, k1:, k1:]
    Rt21_2, Rt22_2 = Rt[1, k1:, :k1], Rt[1, k1:, k1:]
    E1_1, E2_1, E2_2 = E[0, :k1], E[0, k1:], E[1, k1:]
    e1_1, e2_1, e2_2 = e[0, :k1], e[0, k1:], e[1, k1:]

    # §7.2 follower reaction: one Cholesky factor of Rt22_2 for Lambda, K, kappa0 and Sigma_2.
    k2 = Rt22_2.shape[-1]
    chol_f = jnp.linalg.cholesky(Rt22_2)
    sol_f = jax.scipy.linalg.cho_solve(
        (chol_f, True), jnp.concatenate([Rt21_2, E2_2, e2_2[:, None]], axis=1)
    )
    d = E2_2.shape[-1]
    Lam, Kg, kap0 = -sol_f[:, :k1], sol_f[:, k1 : k1 + d], sol_f[:, k1 + d]
    W = Rt12_1 + Lam.T @ Rt22_1  # [k1, k2]
    if concept == "stackelberg":
        Rbar = _sym(Rt11_1 + Rt12_1 @ Lam + Lam.T @ Rt12_1.T + Lam.T @ Rt22_1 @ Lam)
        Ebar = E1_1 + Lam.T @ E2_1 - W @ Kg
        ebar = e1_1 + Lam.T @ e2_1 - W @ kap0
        sol_l = _chol_solve(Rbar, jnp.concatenate([Ebar, ebar[:, None]], axis=1))
        L1, l1 = sol_l[:, :d], sol_l[:, d]
        L2 = Kg + Lam @ L1
        l2 = kap0 + Lam @ l1
        L = jnp.concatenate([L1, L2], axis=0)
        ell = jnp.concatenate([l1, l2], axis=0)
    else:  # Nash, §4.6: [[Rt11_1, Rt12_1], [Rt21_2, Rt22_2]] (L l) = (E1_1 e1_1; E2_2 e2_2).
        N = jnp.block([[Rt11_1, Rt12_1], [Rt21_2, Rt22_2]])
        rhs = jnp.concatenate(
            [jnp.concatenate([E1_1, e1_1[:, None]], 1), jnp.concatenate([E2_2, e2_2[:, None]], 1)]
        )
        sol_n = jnp.linalg.solve(N, rhs)
        L, ell = sol_n[:, :d], sol_n[:, d]
        L1, L2, l1, l2 = L[:k1], L[k1:], ell[:k1], ell[k1:]

    # Covariances Sigma_k = lam_k/2 Rt_kk^{-1} and entropy terms -lam_k/2 log det(2 pi e Sigma_k)
    # = -lam_k/2 (k log(pi e lam_k) - log det Rt_kk), both zero at lam_k = 0.
    lam1, lam2 = lam[0], lam[1]
    dtype = Rt.dtype
    pos1, pos2 = lam1 > 0, lam2 > 0
    chol_11 = jnp.linalg.cholesky(jnp.where(pos1, Rt11_1, jnp.eye(k1, dtype=dtype)))
    Sigma1 = jnp.where(
        pos1,
        0.5 * lam1 * jax.scipy.linalg.cho_solve((chol_11, True), jnp.eye(k1, dtype=dtype)),
        0.0,
    )
    Sigma2 = jnp.where(
        pos2, 0.5 * lam2 * jax.scipy.linalg.cho_solve((chol_f, True), jnp.eye(k2, dtype=dtype)), 0.0
    )
    safe1 = jnp.where(pos1, lam1, 1.0)
    safe2 = jnp.where(pos2, lam2, 1.0)
    logdet11 = 2.0 * jnp.sum(jnp.log(jnp.diagonal(chol_11)))
    logdet22 = 2.0 * jnp.sum(jnp.log(jnp.diagonal(chol_f)))
    ent1 = jnp.where(pos1, -0.5 * lam1 * (k1 * jnp.log(jnp.pi * jnp.e * safe1) - logdet11), 0.0)
    ent2 = jnp.where(pos2, -0.5 * lam2 * (k2 * jnp.log(jnp.pi * jnp.e * safe2) - logdet22), 0.0)
    if zero_sum:  # Single criterion (§6): leader pays its entropy, the maximizer is paid its own.
        entropy = jnp.stack([ent1 - ent2, ent2 - ent1])
    else:
        entropy = jnp.stack([ent1, ent2])
    eps = (
        jnp.einsum("kab,ba->k", Rt[:, :k1, :k1], Sigma1)
        + jnp.einsum("kab,ba->k", Rt[:, k1:, k1:], Sigma2)
        + entropy
    )

    # §7.3 (regime coupling added by the caller).
    CPC = jnp.einsum("lde,kdf,lfg->keg", C, P, C)
    LRL = jnp.einsum("ad,kab,be->kde", L, Rt, L)
    LE = jnp.einsum("ad,kae->kde", L, E)
    FP = (
        data["Q"]
        + P @ A
        + jnp.swapaxes(A, 0, 1)[None] @ P
        + CPC
        + LRL
        - LE
        - jnp.swapaxes(LE, 1, 2)
    )
    Fp = (
        data["q"]
        + p @ A
        + P @ b
        + jnp.einsum("lde,kdf,lf->ke", C, P, s)
        + jnp.einsum("ad,kab,b->kd", L, Rt, ell)
        - jnp.einsum("ad,ka->kd", L, e)
        - jnp.einsum("kad,a->kd", E, ell)
    )
    Fc = (
        2.0 * p @ b
        + jnp.einsum("ld,kde,le->k", s, P, s)
        + jnp.einsum("a,kab,b->k", ell, Rt, ell)
        - 2.0 * e @ ell
        + eps
    )
    if with_margins:
        own_1 = jnp.linalg.eigvalsh(Rt11_1)[0]
        if concept == "stackelberg":
            Rbar_wp = _sym(Rt11_1 + Rt12_1 @ Lam + Lam.T @ Rt12_1.T + Lam.T @ Rt22_1 @ Lam)
            reduced, own_1 = jnp.linalg.eigvalsh(Rbar_wp)[0], jnp.where(pos1, own_1, jnp.inf)
        else:  # Nash (§4.6): each player's own problem strictly convex; no reduced problem
            reduced = jnp.asarray(jnp.inf, dtype)
        margins = jnp.stack([jnp.linalg.eigvalsh(Rt22_2)[0], reduced, own_1])
    else:
        margins = jnp.full((3,), jnp.nan, dtype)
    gains = FeedbackGains(
        L1=L1, l1=l1, L2=L2, l2=l2, K=Kg, kappa0=kap0, Lambda=Lam,
        cov_leader=Sigma1, cov_follower=Sigma2, margins=margins,
    )  # fmt: skip
    return gains, _sym(FP), Fp, Fc


def _all_regimes(game: LQGame, P, p, concept, with_margins=False):
    """vmap of `_regime_terms` over regimes; P [2, m, d, d], p [2, m, d]."""
    return jax.vmap(
        functools.partial(
            _regime_terms, concept=concept, zero_sum=game.zero_sum, with_margins=with_margins
        ),
        in_axes=(0, 1, 1, None),
    )(_regime_data(game), P, p, game.lam)


def riccati_rhs(game: LQGame, P, p, c, *, concept: str = "stackelberg"):
    """Time derivatives ``(dP/dt [2, m, d, d], dp/dt [2, m, d], dc/dt [2, m])`` (§7.3)."""
    return _coupled_rates(game, P, p, c, _all_regimes(game, P, p, concept))


def _coupled_rates(game: LQGame, P, p, c, terms):
    """`riccati_rhs` from the per-regime ``terms`` of `_all_regimes`: adds the coupling."""
    _, FP, Fp, Fc = terms  # leading [m]
    Gamma = game.Gamma
    dP = -(jnp.swapaxes(FP, 0, 1) + jnp.einsum("ij,kjde->kide", Gamma, P))
    dp = -(jnp.swapaxes(Fp, 0, 1) + jnp.einsum("ij,kjd->kid", Gamma, p))
    dc = -(Fc.T + c @ Gamma.T)
    return dP, dp, dc


def _hermite(s, grid_values, grid_slopes):
    """Cubic Hermite interpolation on the uniform grid ``s_j = j / (N - 1)`` of [0, 1].

    ``grid_slopes`` are derivatives with respect to ``s``. Works leaf-wise on pytrees with a
    leading grid axis.
    """
    n = jax.tree.leaves(grid_values)[0].shape[0]
    h = 1.0 / (n - 1)
    pos = jnp.clip(s, 0.0, 1.0) * (n - 1)
    j = jnp.clip(jnp.floor(pos).astype(jnp.int32), 0, n - 2)
    u = pos - j
    h00 = (1 + 2 * u) * (1 - u) ** 2
    h10 = u * (1 - u) ** 2
    h01 = u**2 * (3 - 2 * u)
    h11 = u**2 * (u - 1)

    def leaf(values, slopes):
        return h00 * values[j] + h10 * h * slopes[j] + h01 * values[j + 1] + h11 * h * slopes[j + 1]

    return jax.tree.map(leaf, grid_values, grid_slopes)


@functools.partial(jax.custom_jvp, nondiff_argnums=(0,))
def _interpolate(concept, s, values, rates, game):
    """Coefficients at normalized time ``s = t / T`` from grid values and ``d/dt`` rates.

    The derivative in ``s`` is the exact ODE right-hand side at the interpolated state (so
    ``dV/dt`` of the reference is consistent with the Riccati equations to round-off); the
    derivative in the grid data and the game is that of the Hermite interpolant.
    """
    slopes = jax.tree.map(lambda r: game.T * r, rates)
    return _hermite(s, values, slopes)


@_interpolate.defjvp
def _interpolate_jvp(concept, primals, tangents):
    s, values, rates, game = primals
    s_dot, values_dot, rates_dot, game_dot = tangents
    out, data_tangent = jax.jvp(
        lambda v, r, g: _interpolate.fun(concept, s, v, r, g),
        (values, rates, game),
        (values_dot, rates_dot, game_dot),
    )
    dP, dp, dc = riccati_rhs(game, *out, concept=concept)
    time_tangent = jax.tree.map(lambda d: game.T * d * s_dot, (dP, dp, dc))
    return out, jax.tree.map(jnp.add, data_tangent, time_tangent)


class RiccatiSolution(struct.PyTreeNode):
    """Solution of the coupled Riccati system on a uniform time grid (docs/math.md §7).

    ``V_{k,i}(t, x) = x.P_{k,i}(t) x + 2 p_{k,i}(t).x + c_{k,i}(t)``; between grid points the
    coefficients are cubic-Hermite interpolated from values and exact ODE rates, and the time
    derivative of `value` is the exact right-hand side at the interpolated coefficients.

    Attributes:
      times: [N] ascending grid ``0 = t_0 < ... < t_{N-1} = T``.
      P: [N, 2, m, d, d].  p: [N, 2, m, d].  c: [N, 2, m].
      dP, dp, dc: time derivatives on the grid (same shapes).
      game: the `LQGame`.
      concept: ``"stackelberg"`` or ``"nash"`` (static).
      num_steps: [] accepted + rejected steps of the integrator.
    """

    times: jax.Array
    P: jax.Array
    p: jax.Array
    c: jax.Array
    dP: jax.Array
    dp: jax.Array
    dc: jax.Array
    game: LQGame
    num_steps: jax.Array
    concept: str = struct.field(pytree_node=False, default="stackelberg")

    def coefficients(self, t):
        """``(P [2, m, d, d], p [2, m, d], c [2, m])`` at time ``t`` (scalar)."""
        return _coefficients_at(self, t)

    def value(self, t, x) -> jax.Array:
        """[2, m] values of both players in every regime at ``(t [], x [d])``."""
        return _value_at(self, t, x)

    def gains(self, t, *, with_margins: bool = False) -> FeedbackGains:
        """`FeedbackGains` (all regimes) at time ``t`` (``margins`` NaN unless requested)."""
        return _gains_at(self, t, with_margins=with_margins)

    def policy(self, t, x) -> GaussianPolicy:
        """Equilibrium `GaussianPolicy` at ``(t, x)``: ``mu_k = -(L_k x + l_k)`` (§8)."""
        return _policy_at(self, t, x)


# Module-level jitted kernels: one compilation per shape instead of op-by-op dispatch when the
# methods are called eagerly; inlined when called under an outer jit, grad or vmap.
@jax.jit
def _coefficients_at(sol: RiccatiSolution, t):
    t = jnp.asarray(t, dtype=sol.c.dtype)
    return _interpolate(
        sol.concept, t / sol.game.T, (sol.P, sol.p, sol.c), (sol.dP, sol.dp, sol.dc), sol.game
    )


@jax.jit
def _value_at(sol: RiccatiSolution, t, x):
    P, p, c = _coefficients_at(sol, t)
    return jnp.einsum("d,kmde,e->km", x, P, x) + 2.0 * p @ x + c


@functools.partial(jax.jit, static_argnames="with_margins")
def _gains_at(sol: RiccatiSolution, t, with_margins=False):
    P, p, _ = _coefficients_at(sol, t)
    return _all_regimes(sol.game, P, p, sol.concept, with_margins)[0]


@jax.jit
def _policy_at(sol: RiccatiSolution, t, x):
    g = _gains_at(sol, t)
    return GaussianPolicy(
        mean_leader=-(g.L1 @ x + g.l1),
        cov_leader=g.cov_leader,
        mean_follower=-(g.L2 @ x + g.l2),
        cov_follower=g.cov_follower,
    )


def _check_finite_and_well_posed(times, P, p, c, margins, result, concept):
    finite = jnp.isfinite(P).all() & jnp.isfinite(p).all() & jnp.isfinite(c).all()
    wp = jnp.all(margins > 0)
    import diffrax  # imported on first use: it adds ~0.8 s to `import stackjax`

    ok_solver = result == diffrax.RESULTS.successful
    concrete = not any(isinstance(a, jax.core.Tracer) for a in (finite, wp, ok_solver))
    if concrete:
        if not bool(ok_solver) or not bool(finite):
            bad = np.nonzero(~np.isfinite(np.asarray(c)).all(axis=(1, 2)))[0]
            when = (
                f"; non-finite values from t = {float(times[bad.max()]):.4g} backward"
                if bad.size
                else ""
            )
            raise ValueError(
                "riccati_reference: the coupled Riccati system has no solution on [0, T] "
                f"({concept}; integrator: {result}{when}). Finite escape or a lost "
                "well-posedness condition (docs/math.md §4.5, §7.7). Fix: shorten the horizon `T`, "
                "increase the control costs R11/R22, or reduce the cross terms."
            )
        if not bool(wp):
            m_np = np.asarray(margins)
            n_idx, i_idx, cond = np.unravel_index(np.argmin(m_np), m_np.shape)
            names = ("WP-F (Rt22 of the follower)", "WP-L1 (reduced leader curvature Rbar)",
                     "WP-L2 (Rt11 of the leader)")  # fmt: skip
            raise ValueError(
                f"riccati_reference: well-posedness condition {names[cond]} fails at "
                f"t = {float(times[n_idx]):.4g} in regime {i_idx} (smallest eigenvalue "
                f"{m_np[n_idx, i_idx, cond]:.3g}; docs/math.md §4.5). With controlled diffusion "
                "the curvature R + sum_l D^T P D changes along the solution. Fix: increase R11/R22 "
                "or reduce the control parts D1/D2 of the diffusion."
            )
        return P
    import equinox as eqx

    return eqx.error_if(
        P,
        ~(finite & wp & ok_solver),
        "riccati_reference: the Riccati system blew up or lost well-posedness (docs/math.md §4.5, "
        "§7.7); call it outside jit for details.",
    )


def riccati_reference(
    game: LQGame,
    *,
    concept: str = "stackelberg",
    num_times: int = 101,
    rtol: float | None = None,
    atol: float | None = None,
    max_steps: int = 16_384,
) -> RiccatiSolution:
    """Solves the coupled regime-switching Riccati system of docs/math.md §7.3 backward from ``T``.

    Args:
      game: an `LQGame` (zero-sum games use the entropy book-keeping of §6).
      concept: ``"stackelberg"`` (default) or ``"nash"`` (§4.6, for comparison).
      num_times: number of points of the uniform output grid on ``[0, T]`` (>= 2).
      rtol, atol: integrator tolerances; default ``1e-12`` in float64, ``1e-6`` in float32.
      max_steps: integrator step budget of each output interval.

    Returns:
      A `RiccatiSolution`. Differentiable with respect to the game's arrays (reverse mode via
      diffrax's checkpointed adjoint); works under jit and vmap.

    Raises:
      ValueError: if the solution escapes to infinity or a well-posedness condition of §4.5 is
        lost along the way (under jit: an equinox runtime error).
    """
    check_concept(concept)
    if not isinstance(game, LQGame):
        raise TypeError(
            f"riccati_reference needs an LQGame (built by make_lq_game), got {type(game).__name__}"
            ". Non-LQ games have no Riccati reference; use the neural solver."
        )
    check_setting("`num_times`", scalar_setting(num_times), "int", 2)
    check_setting("`max_steps`", scalar_setting(max_steps), "int", 1)
    for name, tol in (("rtol", rtol), ("atol", atol)):
        check_setting(f"`{name}`", scalar_setting(tol), "positive", optional=True)
    dtype = game.A.dtype
    x64 = dtype == jnp.float64
    rtol = (1e-12 if x64 else 1e-6) if rtol is None else rtol
    atol = (1e-12 if x64 else 1e-6) if atol is None else atol

    P, p, c, rates, margins, result, num_steps = _integrate(
        game, concept=concept, num_times=int(num_times), rtol=float(rtol), atol=float(atol),
        max_steps=int(max_steps),
    )  # fmt: skip
    times = jnp.flip(game.T - jnp.linspace(0.0, 1.0, int(num_times), dtype=dtype) * game.T)
    times = times.at[0].set(0.0)
    P = _check_finite_and_well_posed(times, P, p, c, margins, result, concept)
    return RiccatiSolution(
        times=times, P=P, p=p, c=c, dP=rates[0], dp=rates[1], dc=rates[2], game=game,
        num_steps=num_steps, concept=concept,
    )  # fmt: skip


@functools.partial(jax.jit, static_argnames=("concept", "num_times", "rtol", "atol", "max_steps"))
def _integrate(game: LQGame, *, concept, num_times, rtol, atol, max_steps):
    """Backward Dopri8 integration; returns grid values (ascending t), rates, WP margins."""
    import diffrax

    dtype = game.A.dtype

    @jax.jit  # traced once, called by every stage
    def vector_field(tau, y, args):  # tau = T - t: forward in tau, so d/dtau = -d/dt.
        dP, dp, dc = riccati_rhs(args, *y, concept=concept)
        return (-dP, -dp, -dc)

    y0 = (game.G, game.g, game.g0)
    taus = jnp.linspace(0.0, 1.0, num_times, dtype=dtype) * game.T
    term, solver = diffrax.ODETerm(vector_field), diffrax.Dopri8()
    controller = diffrax.PIDController(rtol=rtol, atol=atol)
    successful = diffrax.RESULTS.successful

    # One solve per output interval, so every saved value is a step end point (no dense
    # interpolation error, ~1e-10 for Dopri8 at these tolerances). A single solve with
    # SaveAt(ts=...) would check the traced grid with host callbacks, which keep the compiled
    # program out of JAX's persistent compilation cache.
    def solve(y, result, bounds):
        sol = diffrax.diffeqsolve(
            term, solver, t0=bounds[0], t1=bounds[1], dt0=None, y0=y, args=game,
            stepsize_controller=controller, max_steps=max_steps, throw=False,
        )  # fmt: skip
        y = jax.tree.map(lambda leaf: leaf[-1], sol.ys)
        return y, sol.result, jnp.asarray(sol.stats["num_steps"], jnp.int32)

    def skip(y, result, bounds):  # after a failed interval (a blow-up): no more steps
        return y, result, jnp.zeros((), jnp.int32)

    def interval(carry, bounds):
        y, result, steps = carry
        y, result, taken = jax.lax.cond(result == successful, solve, skip, y, result, bounds)
        return (y, result, steps + taken), y

    start = (y0, successful, jnp.zeros((), jnp.int32))
    (_, result, num_steps), ys = jax.lax.scan(interval, start, (taus[:-1], taus[1:]))
    ys = jax.tree.map(lambda first, rest: jnp.concatenate([first[None], rest]), y0, ys)
    P, p, c = (jnp.flip(leaf, axis=0) for leaf in ys)

    def rates_and_margins(P_, p_, c_):  # one pass: the rates and the well-posedness margins
        terms = _all_regimes(game, P_, p_, concept, with_margins=True)
        return _coupled_rates(game, P_, p_, c_, terms), terms[0].margins

    rates, margins = jax.vmap(rates_and_margins)(P, p, c)
    return P, p, c, rates, margins, result, num_steps
