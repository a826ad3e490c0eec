r"""A non-LQ regime-switching Stackelberg game with an exact solution (Cole-Hopf transform).

`ColeHopfGame` is a control-quadratic game with non-quadratic, non-convex (soft-min) terminal
costs whose equilibrium values, policies and Hamiltonians are known in closed form: the
Cole-Hopf transform turns each player's HJB equation into the backward Kolmogorov equation of
an Ornstein-Uhlenbeck process, solved in closed form for Gaussian-mixture terminal data. Model,
derivation and checks: docs/cole_hopf.md (symbols there).

Shape legend: d state, k1 = d_a leader control, k2 = d follower control, n = d noise columns,
m regimes, C targets per player.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from jax.scipy.special import logsumexp, xlogy

from .._gibbs import GaussianPolicy
from .._protocol import Coefficients, SymbolGame, default_float_dtype
from .._validation import check_generator, fail

__all__ = ["ColeHopfGame", "ExactSolution", "make_cole_hopf_game"]


class ColeHopfGame(SymbolGame, struct.PyTreeNode):
    """Regime-switching Stackelberg game with soft-min terminal costs and an exact solution.

    Follows the `ControlQuadraticGame` protocol (use it with `hjbi_residual`, `simulate`,
    `monte_carlo_cost`, `solve`, `evaluate`); the model and the derivation of the exact
    solution are in the module docstring (symbols there). Build with `make_cole_hopf_game`.

    Attributes:
      T: [] horizon.
      Gamma: [m, m] generator of the regime chain.
      lam: [2] temperatures ``(lambda_1, lambda_2)``.
      x0: [d] reference initial state.
      alpha: [] mean reversion of the uncontrolled drift ``-alpha x`` (> 0).
      sigma: [] noise size per coordinate.
      leader_scale: [m] ``s_i`` (leader control units in regime ``i``).
      follower_scale: [m] ``s'_i`` (follower control units of ``v``).
      b_a, b_r: [] drift gains of the leader's control and of the follower's reaction.
      gamma: [] the follower's reaction target ``r = gamma u1``.
      rho_L, q_r: [] the leader's cost of its control and of the follower's reaction.
      rho_r, rho_F: [] the follower's cost of reaction deviations and of its control ``v``.
      offsets: [2, m] regime-dependent running-cost constants ``c_{k,i}``.
      leader_targets: [C, d_a] wells ``z_c`` of the leader's soft-min on ``x_a``.
      leader_log_weights: [C] ``log w_c`` (normalised).
      leader_well: [] ``g`` of the leader's wells.
      follower_targets: [C, d_b]; follower_log_weights: [C]; follower_well: [] (same for the
        follower's soft-min on ``x_b``).
      tracking_target: [d_b] ``z_L``; tracking_weight: [] ``h``.
      leader_block: static ``d_a``.
    """

    T: jax.Array
    Gamma: jax.Array
    lam: jax.Array
    x0: jax.Array
    alpha: jax.Array
    sigma: jax.Array
    leader_scale: jax.Array
    follower_scale: jax.Array
    b_a: jax.Array
    b_r: jax.Array
    gamma: jax.Array
    rho_L: jax.Array
    q_r: jax.Array
    rho_r: jax.Array
    rho_F: jax.Array
    offsets: jax.Array
    leader_targets: jax.Array
    leader_log_weights: jax.Array
    leader_well: jax.Array
    follower_targets: jax.Array
    follower_log_weights: jax.Array
    follower_well: jax.Array
    tracking_target: jax.Array
    tracking_weight: jax.Array
    leader_block: int = struct.field(pytree_node=False, default=1)
    zero_sum: bool = struct.field(pytree_node=False, default=False)
    has_controlled_diffusion: bool = struct.field(pytree_node=False, default=False)

    # Protocol (horizon, generator, temperatures, initial_state, num_regimes, state_dim
    # from `SymbolGame`) ---------------------------------------------------------------
    @property
    def leader_dim(self) -> int:
        return self.leader_block

    @property
    def follower_dim(self) -> int:
        return self.state_dim

    @property
    def noise_dim(self) -> int:
        return self.state_dim

    # Derived constants ------------------------------------------------------------------
    @property
    def leader_gain(self) -> jax.Array:
        """[] ``K_L = (b_a + gamma b_r)^2 / (rho_L + gamma^2 q_r)`` (reaction included)."""
        return (self.b_a + self.gamma * self.b_r) ** 2 / (self.rho_L + self.gamma**2 * self.q_r)

    @property
    def cole_hopf_constants(self) -> jax.Array:
        """[2] ``(theta_1, theta_2) = (2 sigma^2 / K_L, 2 sigma^2 rho_F)``."""
        s2 = self.sigma**2
        return jnp.stack([2.0 * s2 / self.leader_gain, 2.0 * s2 * self.rho_F])

    def regime_constants(self) -> jax.Array:
        """[2, m] ``e_{k,i}``: running-cost offsets plus the constant parts of ``H*_{k,i}``."""
        lam1, lam2 = self.lam[0], self.lam[1]
        da, d = self.leader_block, self.state_dim
        db = d - da
        s2, f2 = self.leader_scale**2, self.follower_scale**2
        e1 = (
            -0.5 * da * xlogy(lam1, jnp.pi * lam1)
            + 0.5 * da * lam1 * jnp.log(s2 * self.rho_L)
            + 0.5 * lam2 * da * s2 * self.q_r / self.rho_r
        )
        e2 = (
            -0.5 * d * xlogy(lam2, jnp.pi * lam2)
            + 0.5 * lam2 * (da * jnp.log(self.rho_r) + db * jnp.log(f2 * self.rho_F))
            + 0.5 * lam1 * self.gamma**2 * self.rho_r * da / (s2 * self.rho_L)
        )
        return self.offsets + jnp.stack([e1, e2])

    def _split(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        return x[: self.leader_block], x[self.leader_block :]

    def coefficients(self, x: jax.Array, regime: jax.Array) -> Coefficients:
        """Pointwise coefficients (§3.1) at state ``x`` [d] in ``regime`` (int scalar)."""
        i = regime
        d, da = self.state_dim, self.leader_block
        db = d - da
        dtype = x.dtype
        s, sf = self.leader_scale[i], self.follower_scale[i]
        eye_a, eye_b = jnp.eye(da, dtype=dtype), jnp.eye(db, dtype=dtype)
        zeros_ab = jnp.zeros((da, db), dtype)
        B1 = jnp.concatenate([s * self.b_a * eye_a, zeros_ab.T])  # [d, da]
        B2 = jnp.block([[s * self.b_r * eye_a, zeros_ab], [zeros_ab.T, sf * eye_b]])  # [d, d]
        R11 = jnp.stack([s**2 * self.rho_L * eye_a, self.gamma**2 * self.rho_r * eye_a])
        R12 = jnp.stack(
            [jnp.zeros((da, d), dtype), jnp.concatenate([-self.gamma * self.rho_r * eye_a,
                                                         zeros_ab], axis=1)]
        )  # fmt: skip
        R22 = jnp.stack(
            [
                jnp.block([[s**2 * self.q_r * eye_a, zeros_ab], [zeros_ab.T, 0.0 * eye_b]]),
                jnp.block(
                    [[self.rho_r * eye_a, zeros_ab], [zeros_ab.T, sf**2 * self.rho_F * eye_b]]
                ),
            ]
        )
        return Coefficients(
            beta=-self.alpha * x,
            B1=B1,
            B2=B2,
            c=self.sigma * jnp.eye(d, dtype=dtype),
            D1=jnp.zeros((d, d, da), dtype),
            D2=jnp.zeros((d, d, d), dtype),
            f0=self.offsets[:, i].astype(dtype),
            w1=jnp.zeros((2, da), dtype),
            w2=jnp.zeros((2, d), dtype),
            R11=R11,
            R12=R12,
            R22=R22,
        )

    def terminal_cost(self, x: jax.Array, regime: jax.Array) -> jax.Array:
        """[2] terminal costs ``(Phi_a(x_a) + h |x_b - z_L|^2, Phi_b(x_b))`` (any regime)."""
        del regime
        xa, xb = self._split(x)
        theta = self.cole_hopf_constants
        leader = self._soft_min(xa, theta[0], self.leader_targets, self.leader_log_weights,
                                self.leader_well)  # fmt: skip
        follower = self._soft_min(xb, theta[1], self.follower_targets,
                                  self.follower_log_weights, self.follower_well)  # fmt: skip
        tracking = self.tracking_weight * jnp.sum((xb - self.tracking_target) ** 2)
        return jnp.stack([leader + tracking, follower])

    @staticmethod
    def _soft_min(y, theta, targets, log_weights, well):
        """``-theta log sum_c w_c exp(-g |y - z_c|^2 / theta)``."""
        sq = jnp.sum((y[None, :] - targets) ** 2, axis=-1)  # [C]
        return -theta * logsumexp(log_weights - well * sq / theta)

    # Exact solution -----------------------------------------------------------------------
    def _ou_moments(self, tau):
        """Decay ``e^{-alpha tau}`` and variance ``sigma^2 (1 - e^{-2 alpha tau}) / (2 alpha)``."""
        decay = jnp.exp(-self.alpha * tau)
        var = self.sigma**2 * (-jnp.expm1(-2.0 * self.alpha * tau)) / (2.0 * self.alpha)
        return decay, var

    def _mixture(self, tau, y, theta, targets, log_weights, well):
        """``log phi`` [], posterior weights [C], tilted means [C, p], tilted variance []."""
        decay, var = self._ou_moments(tau)
        kappa = 2.0 * well / theta
        denom = 1.0 + var * kappa
        mean = decay * y
        sq = jnp.sum((mean[None, :] - targets) ** 2, axis=-1)  # [C]
        p = y.shape[-1]
        logs = log_weights - 0.5 * p * jnp.log(denom) - 0.5 * kappa * sq / denom
        log_phi = logsumexp(logs)
        posterior = jnp.exp(logs - log_phi)
        tilted_mean = (mean[None, :] + var * kappa * targets) / denom
        return log_phi, posterior, tilted_mean, var / denom

    def _offsets_at(self, tau) -> jax.Array:
        """[2, m] ``a_{k,i} = [int_0^tau exp(Gamma u) du e_k]_i``."""
        m = self.num_regimes
        e = self.regime_constants()  # [2, m]
        dtype = e.dtype
        aug = jnp.zeros((m + 2, m + 2), dtype)
        aug = aug.at[:m, :m].set(self.Gamma.astype(dtype)).at[:m, m:].set(e.T)
        return jax.scipy.linalg.expm(aug * tau)[:m, m:].T

    def _state_values(self, t: jax.Array, x: jax.Array) -> jax.Array:
        """[2] the regime-independent parts ``W_k(t, x)`` of the values."""
        dtype = jnp.result_type(x.dtype, float)
        tau = self.T.astype(dtype) - jnp.asarray(t, dtype)
        xa, xb = self._split(x)
        theta = self.cole_hopf_constants
        log_phi_a, _, _, _ = self._mixture(tau, xa, theta[0], self.leader_targets,
                                           self.leader_log_weights, self.leader_well)  # fmt: skip
        log_phi_b, post, means, var = self._mixture(
            tau, xb, theta[1], self.follower_targets, self.follower_log_weights,
            self.follower_well,
        )  # fmt: skip
        sq = jnp.sum((means - self.tracking_target[None, :]) ** 2, axis=-1)  # [C]
        tracking = self.tracking_weight * (post @ sq + xb.shape[-1] * var)
        return jnp.stack([-theta[0] * log_phi_a + tracking, -theta[1] * log_phi_b])

    def exact_value(self, t: jax.Array, x: jax.Array) -> jax.Array:
        """[2, m] equilibrium values ``V_{k,i}(t, x) = W_k(t, x) + a_{k,i}(t)`` in closed form.

        Args:
          t: [] time in ``[0, T]``.
          x: [d] state.
        """
        dtype = jnp.result_type(x.dtype, float)
        tau = self.T.astype(dtype) - jnp.asarray(t, dtype)
        return self._state_values(t, x)[:, None] + self._offsets_at(tau)

    def exact_policy(self, t: jax.Array, x: jax.Array) -> GaussianPolicy:
        """Equilibrium `GaussianPolicy` (all regimes) from the closed forms of the docstring.

        ``mu_1 = -(b_a + gamma b_r) grad_a V_1 / (2 s_i (rho_L + gamma^2 q_r))``,
        ``mu_2 = (gamma mu_1, -grad_b V_2 / (2 s'_i rho_F))``; covariances
        ``lambda_1 / (2 s_i^2 rho_L) I`` and ``lambda_2 / 2 diag(1 / rho_r, 1 / (s'_i^2 rho_F))``.
        """
        dtype = jnp.result_type(x.dtype, float)
        g1, g2 = jax.jacrev(lambda z: self._state_values(t, z))(x)  # [d], [d]
        da = self.leader_block
        s, sf = self.leader_scale.astype(dtype), self.follower_scale.astype(dtype)
        coef1 = (self.b_a + self.gamma * self.b_r) / (2.0 * (self.rho_L + self.gamma**2 * self.q_r))
        mean_leader = -(coef1 / s)[:, None] * g1[None, :da]  # [m, da]
        mean_v = -(1.0 / (2.0 * sf * self.rho_F))[:, None] * g2[None, da:]  # [m, db]
        mean_follower = jnp.concatenate([self.gamma * mean_leader, mean_v], axis=1)
        lam1, lam2 = self.lam[0], self.lam[1]
        eye_a = jnp.eye(da, dtype=dtype)
        cov_leader = (lam1 / (2.0 * s**2 * self.rho_L))[:, None, None] * eye_a[None]
        diag = jnp.concatenate(
            [
                jnp.broadcast_to(1.0 / self.rho_r, (s.shape[0], da)),
                jnp.broadcast_to((1.0 / (sf**2 * self.rho_F))[:, None], (s.shape[0],
                                                                        self.state_dim - da)),
            ],
            axis=1,
        )  # fmt: skip
        cov_follower = 0.5 * lam2 * jax.vmap(jnp.diag)(diag)
        return GaussianPolicy(
            mean_leader=mean_leader.astype(dtype),
            cov_leader=cov_leader.astype(dtype),
            mean_follower=mean_follower.astype(dtype),
            cov_follower=cov_follower.astype(dtype),
        )

    def exact_solution(self) -> ExactSolution:
        """The exact solution as an object for `evaluate` (``.value``, ``.policy``, ``.game``)."""
        return ExactSolution(game=self)


class ExactSolution(struct.PyTreeNode):
    """Exact reference of a `ColeHopfGame` with the interface `evaluate` expects."""

    game: ColeHopfGame

    def value(self, t, x) -> jax.Array:
        """[2, m] ``V_{k,i}(t, x)``."""
        return self.game.exact_value(t, x)

    def policy(self, t, x) -> GaussianPolicy:
        """Equilibrium `GaussianPolicy` (all regimes)."""
        return self.game.exact_policy(t, x)


def _fail(name: str, problem: str, fix: str) -> None:
    fail("make_cole_hopf_game", name, problem, fix)


def _targets(direction: np.ndarray, positions) -> np.ndarray:
    return np.asarray(positions, float)[:, None] * direction[None, :]


def make_cole_hopf_game(
    d: int = 10,
    *,
    Gamma=((-1.0, 1.0), (2.0, -2.0)),
    lam=(0.2, 0.2),
    T: float = 1.0,
    x0=None,
    alpha: float = 0.5,
    sigma: float = 0.6,
    leader_scale=(1.0, 1.5),
    follower_scale=(1.0, 0.8),
    b_a: float = 1.0,
    b_r: float = 0.5,
    gamma: float = 1.0,
    rho_L: float = 1.0,
    q_r: float = 0.1,
    rho_r: float = 1.0,
    rho_F: float = 1.0,
    offsets=((0.2, 0.5), (0.1, 0.0)),
    leader_targets=None,
    leader_weights=(0.6, 0.4),
    leader_well: float = 0.3,
    follower_targets=None,
    follower_weights=(0.5, 0.5),
    follower_well: float = 0.3,
    tracking_target=None,
    tracking_weight: float = 0.5,
) -> ColeHopfGame:
    """Validates the parameters and builds a `ColeHopfGame` (symbols of the module docstring).

    The state splits into ``x_a`` (first ``d_a = ceil(d / 2)`` coordinates, the leader's) and
    ``x_b`` (the remaining ``d_b = floor(d / 2)``, the follower's). Defaults: two regimes,
    wells of the leader at ``+1.0 u_a`` and ``-0.8 u_a`` (weights 0.6, 0.4) and of the follower
    at ``+-0.7 u_b``, the leader's tracking target ``z_L = 0.5 u_b``, where ``u_a, u_b`` are the
    normalised all-ones vectors of the blocks (so the values are not separable in the
    coordinates); ``x0 = 0.2 * ones / sqrt(d)``.

    Args:
      d: state dimension (>= 2).
      Gamma: [m, m] generator; ``leader_scale``, ``follower_scale`` [m] and ``offsets`` [2, m]
        follow its ``m``.
      lam: [2] temperatures (>= 0).
      T: horizon (> 0).
      x0: [d] reference initial state.
      alpha: mean reversion (> 0); sigma: noise per coordinate (> 0).
      leader_scale, follower_scale: [m] control units ``s_i, s'_i`` (> 0).
      b_a, b_r, gamma: drift gains of the leader's control and of the reaction, reaction target.
      rho_L, q_r, rho_r, rho_F: control costs (> 0; ``q_r >= 0``).
      offsets: [2, m] running-cost constants.
      leader_targets, follower_targets: [C, d_a], [C', d_b] wells; leader_weights,
        follower_weights: [C], [C'] positive mixture weights (normalised here).
      leader_well, follower_well: ``g > 0``.
      tracking_target: [d_b] ``z_L``; tracking_weight: ``h >= 0``.

    Raises:
      ValueError: naming the parameter, for wrong shapes, non-finite or out-of-range values.
    """
    if int(d) != d or d < 2:
        _fail("d", f"must be an integer >= 2, got {d}", "use d >= 2 (one coordinate per player)")
    d = int(d)
    da = d - d // 2
    db = d - da
    dtype = default_float_dtype()
    Gamma = np.asarray(Gamma, float)
    check_generator(Gamma, "Gamma", "make_cole_hopf_game")
    m = Gamma.shape[0]
    u_a, u_b = np.ones(da) / np.sqrt(da), np.ones(db) / np.sqrt(db)
    arrays = {
        "lam": np.asarray(lam, float),
        "x0": 0.2 * np.ones(d) / np.sqrt(d) if x0 is None else np.asarray(x0, float),
        "leader_scale": np.asarray(leader_scale, float),
        "follower_scale": np.asarray(follower_scale, float),
        "offsets": np.asarray(offsets, float),
        "leader_targets": _targets(u_a, [1.0, -0.8])
        if leader_targets is None
        else np.asarray(leader_targets, float),
        "leader_weights": np.asarray(leader_weights, float),
        "follower_targets": _targets(u_b, [0.7, -0.7])
        if follower_targets is None
        else np.asarray(follower_targets, float),
        "follower_weights": np.asarray(follower_weights, float),
        "tracking_target": 0.5 * u_b if tracking_target is None else np.asarray(tracking_target),
    }
    expected = {
        "lam": (2,), "x0": (d,), "leader_scale": (m,), "follower_scale": (m,), "offsets": (2, m),
        "leader_targets": (arrays["leader_weights"].shape[0], da),
        "follower_targets": (arrays["follower_weights"].shape[0], db),
        "tracking_target": (db,),
    }  # fmt: skip
    for name, shape in expected.items():
        if arrays[name].shape != shape:
            _fail(name, f"must have shape {shape} (d={d}, d_a={da}, d_b={db}, m={m} from "
                  f"Gamma, C from the weights), got {arrays[name].shape}",
                  "reshape it")  # fmt: skip
    scalars = dict(T=T, alpha=alpha, sigma=sigma, b_a=b_a, b_r=b_r, gamma=gamma, rho_L=rho_L,
                   q_r=q_r, rho_r=rho_r, rho_F=rho_F, leader_well=leader_well,
                   follower_well=follower_well, tracking_weight=tracking_weight)  # fmt: skip
    for name, value in [*scalars.items(), *arrays.items(), ("Gamma", Gamma)]:
        if not np.all(np.isfinite(np.asarray(value, float))):
            _fail(name, "has non-finite entries", "pass finite numbers")
    positive = ("T", "alpha", "sigma", "rho_L", "rho_r", "rho_F", "leader_well", "follower_well")
    for name in positive:
        if not scalars[name] > 0:
            _fail(name, f"must be > 0, got {scalars[name]}", "pass a positive number")
    for name in ("q_r", "tracking_weight"):
        if not scalars[name] >= 0:
            _fail(name, f"must be >= 0, got {scalars[name]}", "pass a non-negative number")
    if np.any(arrays["lam"] < 0):
        _fail("lam", f"temperatures must be >= 0, got {arrays['lam']}", "use lam >= 0")
    for name in ("leader_scale", "follower_scale", "leader_weights", "follower_weights"):
        if np.any(arrays[name] <= 0):
            _fail(name, f"must be positive, got {arrays[name]}", "pass positive numbers")
    if b_a + gamma * b_r == 0:
        _fail("b_a", "plus gamma * b_r is zero: the leader cannot move x_a",
              "choose b_a + gamma b_r != 0")  # fmt: skip

    def log_weights(w):
        return np.log(w / w.sum())

    cast = lambda a: jnp.asarray(a, dtype)  # noqa: E731
    return ColeHopfGame(
        T=cast(T), Gamma=cast(Gamma), lam=cast(arrays["lam"]), x0=cast(arrays["x0"]),
        alpha=cast(alpha), sigma=cast(sigma), leader_scale=cast(arrays["leader_scale"]),
        follower_scale=cast(arrays["follower_scale"]), b_a=cast(b_a), b_r=cast(b_r),
        gamma=cast(gamma), rho_L=cast(rho_L), q_r=cast(q_r), rho_r=cast(rho_r),
        rho_F=cast(rho_F), offsets=cast(arrays["offsets"]),
        leader_targets=cast(arrays["leader_targets"]),
        leader_log_weights=cast(log_weights(arrays["leader_weights"])),
        leader_well=cast(leader_well), follower_targets=cast(arrays["follower_targets"]),
        follower_log_weights=cast(log_weights(arrays["follower_weights"])),
        follower_well=cast(follower_well), tracking_target=cast(arrays["tracking_target"]),
        tracking_weight=cast(tracking_weight), leader_block=da,
    )  # fmt: skip
