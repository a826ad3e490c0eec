"""Value networks of both players in every regime (Flax), with the terminal condition built in.

For player ``k`` and regime ``i`` (docs/math.md §5.1; the architecture: docs/solver.md),
``V_{k,i}(t, x) = psi_{k,i}(x) + S_{k,i} phi(tau) [ z.A_{k,i}(sigma) z + a_{k,i}(sigma).z
+ a0_{k,i}(sigma) + NN_{k,i}(tau, z) ]`` with

- ``tau = (T - t) / T`` in ``[0, 1]`` and ``z = (x - x0) / s`` (input scaling from the game's
  horizon, initial state and the sampling scale ``s``);
- ``psi_{k,i}`` the game's terminal cost: ``phi(0) = 0`` makes ``V(T, x) = psi(x)``
  **exactly**, so there is no terminal loss term to balance (and no terminal error);
- a time-dependent quadratic form in ``z`` whose coefficients are linear in a Chebyshev basis
  of ``sigma`` (exact for LQ games up to the time truncation, which converges spectrally because
  the Riccati coefficients are analytic in ``t``), plus a tanh MLP correction ``NN`` (last
  layer initialised at zero) for non-quadratic value functions;
- ``sigma = phi = tau`` unless the game has a time scale much shorter than ``T`` (fast regime
  switching, cheap control, long horizons): then `time_map` resolves the terminal layer;
- ``S_{k,i}`` an output scale estimated from the game (terminal and running cost magnitudes
  on the sampling distribution), so that the bracket is O(1) at initialisation.

Per-regime parameters are stacked on a leading ``[m]`` axis (``vmap`` over ``init``); a regime's
value depends only on its own parameters, so per-regime derivatives are independent. In a
zero-sum game (docs/math.md §6) a single output per regime is trained and ``V_2 = -V_1`` exactly.
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import struct

__all__ = [
    "Normalization",
    "QuadraticCoefficients",
    "ValueModel",
    "estimate_normalization",
    "fastest_rate",
    "time_map",
]


class QuadraticCoefficients(struct.PyTreeNode):
    """The quadratic head of one regime at one time: ``z.H z / 2 + a.z + a0`` in ``z``.

    ``H(tau) = sum_k T_k(2 tau - 1) B_k`` is held in one of two forms (`ValueModel.apply_hessian`
    applies either to vectors):

    - expanded: ``hessian [p, d, d]``, formed once per time and shared by its states;
    - factored: ``features [K]`` (the ``T_k``), the symmetric basis matrices ``B_k`` staying in
      the parameters; ``H v = sum_k T_k (B_k v)`` is then one matrix product of the basis with
      all vectors of the batch, and no per-time ``[p, d, d]`` array exists.

    Attributes:
      hessian: [p, d, d] symmetric ``H(tau)`` (z-Hessian of the bracket's quadratic part), or
        ``None`` in the factored form.
      linear: [p, d] ``a(tau)``.
      constant: [p] ``a0(tau)``.
      features: [K] ``T_k(2 tau - 1)`` in the factored form, else ``None``.
    """

    hessian: jax.Array | None
    linear: jax.Array
    constant: jax.Array
    features: jax.Array | None = None


class Normalization(struct.PyTreeNode):
    """Input and output scaling of the value networks (not trained).

    Attributes:
      center: [d] ``x0``.
      state_scale: [] ``s``.
      horizon: [] ``T``.
      value_scale: [2, m] ``S_{k,i}``.
      time_scale: [] ``epsilon``, the game's fastest time scale as a fraction of ``T``
        (`time_map`); ``inf`` when it is not much shorter than ``T``.
    """

    center: jax.Array
    state_scale: jax.Array
    horizon: jax.Array
    value_scale: jax.Array
    time_scale: jax.Array


def estimate_normalization(
    game, state_scale: float, num_points: int = 512, *, time_basis: int | None = None
) -> Normalization:
    """Scales from the game: ``S_{k,i} = RMS psi_{k,i} + T RMS f0_{k,i} + T |lambda_k| + eps``.

    RMS over ``x ~ N(x0, s^2 I)`` (a fixed internal draw, so the result is a deterministic
    function of the game, differentiable in the game's arrays so that ``jax.grad`` through
    `solve` sees the full dependence). ``f0`` is the control-free running cost (§3.1).
    """
    dtype = game.initial_state.dtype
    x = game.initial_state[None, :] + state_scale * jax.random.normal(
        jax.random.key(20240611), (num_points, game.state_dim), dtype
    )
    regimes = jnp.arange(game.num_regimes)

    def at(xs, i):
        return game.terminal_cost(xs, i), game.coefficients(xs, i).f0  # [2], [2]

    psi, f0 = jax.vmap(jax.vmap(at, in_axes=(None, 0)), in_axes=(0, None))(x, regimes)  # [N, m, 2]
    rms = lambda a: jnp.sqrt(jnp.mean(a**2, axis=0)).T  # noqa: E731  [2, m]
    T = game.horizon
    scale = rms(psi) + T * rms(f0) + T * jnp.abs(game.temperatures)[:, None]
    scale = scale + 1e-3 * jnp.max(scale) + 1e-6
    # A discretisation choice, not part of the solution: no derivative flows through it.
    rate = jax.lax.stop_gradient(fastest_rate(game))
    fraction = TIME_SCALE_FACTOR / (rate * jax.lax.stop_gradient(T))
    # Few time polynomials (the d >= 20 default of 3) cannot follow the stretched time: the map
    # needs MIN_TIME_MAP_BASIS of them (docs/solver.md, "Time map").
    stretch = time_basis is None or time_basis >= MIN_TIME_MAP_BASIS
    use = (fraction < PLAIN_TIME_FRACTION) & stretch
    time_scale = jnp.where(use, fraction, jnp.inf).astype(dtype)
    return Normalization(
        center=game.initial_state,
        state_scale=jnp.asarray(state_scale, dtype),
        horizon=T,
        value_scale=scale,
        time_scale=time_scale,
    )


#: ``epsilon = TIME_SCALE_FACTOR / (rho T)`` (`estimate_normalization`); the plain map in
#: ``tau`` is kept while ``epsilon >= PLAIN_TIME_FRACTION`` (docs/solver.md, "Time map").
TIME_SCALE_FACTOR = 2.0
PLAIN_TIME_FRACTION = 1.0 / 3.0
#: Fewest Chebyshev polynomials (`NetworkConfig.time_basis`) with which the map is used.
MIN_TIME_MAP_BASIS = 8


@jax.jit  # one compilation per game structure instead of dozens of eager operations
def fastest_rate(game) -> jax.Array:
    """[] ``rho``: the fastest rate (1 / time) at which a value can change near the terminal
    time, from the game at ``x0`` in every regime (docs/solver.md, "Time map"): the largest regime
    leaving rate ``-Gamma_ii``, the drift Jacobian's norm, and each player's closed-loop rates
    ``|M_k| |psi_k''| + sqrt(|M_k| |f0_k''|)`` with the control authority
    ``M_1 = B1 R11^-1 B1^T`` (leader's cost) and ``M_2 = B2 R22^-1 B2^T`` (follower's; the
    disturbance's ``-R22`` of the leader in a zero-sum game). Spectral norms."""
    x0 = game.initial_state

    def spectral(a):  # symmetric [.., d, d]
        return jnp.max(jnp.abs(jnp.linalg.eigvalsh(a)))

    def authority(B, R):
        return spectral(B @ jnp.linalg.pinv(R) @ B.T)

    def regime_rate(i):
        coef = game.coefficients(x0, i)
        drift = jnp.linalg.norm(jax.jacfwd(lambda x: game.coefficients(x, i).beta)(x0), 2)
        terminal = jax.hessian(lambda x: game.terminal_cost(x, i))(x0)  # [2, d, d]
        running = jax.hessian(lambda x: game.coefficients(x, i).f0)(x0)  # [2, d, d]
        follower_cost = -coef.R22[0] if game.zero_sum else coef.R22[1]  # static flag
        rates = []
        for k, M in enumerate((authority(coef.B1, coef.R11[0]), authority(coef.B2, follower_cost))):
            own = 0 if game.zero_sum else k
            curvature = spectral(0.5 * (terminal[own] + terminal[own].T))
            cost = spectral(0.5 * (running[own] + running[own].T))
            rates.append(M * curvature + jnp.sqrt(M * cost))
        return jnp.max(jnp.stack([drift, *rates]))

    regimes = jnp.arange(game.num_regimes)
    leaving = jnp.max(-jnp.diagonal(jnp.asarray(game.generator)))
    return jnp.maximum(jnp.max(jax.vmap(regime_rate)(regimes)), leaving)


def time_map(norm: Normalization, t: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(sigma, phi)`` at times ``t``: the argument of the Chebyshev basis and the factor in
    front of the bracket, both functions of ``tau = (T - t) / T`` with value 0 at ``tau = 0``
    and 1 at ``tau = 1`` (docs/solver.md, "Time map").

    With ``epsilon = norm.time_scale`` finite, ``sigma = log(1 + tau / epsilon) /
    log(1 + 1 / epsilon)`` spreads the terminal layer of width ``epsilon`` over the basis and
    ``phi = (1 - exp(-tau / epsilon)) / (1 - exp(-1 / epsilon))`` saturates after it, so a
    value that settles within ``epsilon`` of ``T`` (fast regime switching, cheap control, long
    horizons) leaves a bracket of order 1 instead of one growing like ``1 / tau``. With
    ``epsilon = inf`` both are ``tau``.
    """
    tau = (norm.horizon - t) / norm.horizon
    eps = norm.time_scale
    finite = jnp.isfinite(eps)
    e = jnp.where(finite, eps, 1.0)  # a harmless value on the branch not taken
    sigma = jnp.log1p(tau / e) / jnp.log1p(1.0 / e)
    phi = jnp.expm1(-tau / e) / jnp.expm1(-1.0 / e)
    return jnp.where(finite, sigma, tau), jnp.where(finite, phi, tau)


def _chebyshev(s: jax.Array, num: int) -> jax.Array:
    """[num] Chebyshev polynomials ``T_0 .. T_{num-1}`` at ``s`` in ``[-1, 1]``."""
    out = [jnp.ones_like(s), s]
    for _ in range(num - 2):
        out.append(2.0 * s * out[-1] - out[-2])
    return jnp.stack(out[:num])


class _RegimeHead(nn.Module):
    """Parameters of one regime's bracket for ``p`` players; evaluates the MLP correction.

    Holds the quadratic head's Chebyshev coefficients (``quadratic [K, p, d, d]``, ``linear
    [K, p, d]``, ``constant [K, p]``), which `ValueModel.time_coefficients` evaluates once per
    time, and the MLP correction ``NN(tau, z)`` (last layer initialised at zero), which
    ``__call__`` returns (``[p]`` zeros without the correction).
    """

    state_dim: int
    num_outputs: int
    time_basis: int
    width: int
    depth: int
    correction: bool
    param_dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, tau: jax.Array, z: jax.Array) -> jax.Array:
        d, p, K = self.state_dim, self.num_outputs, self.time_basis
        zeros = nn.initializers.zeros
        dense = dict(param_dtype=self.param_dtype, dtype=self.param_dtype)
        # Quadratic coefficients stored as dense [d, d] blocks of which only the upper triangle
        # is used: one coefficient per monomial z_a z_b (a <= b), as with a triangular basis
        # (so Adam's per-coefficient steps are the same), while gradients and Hessian products
        # are dense matrix products, with no gather/scatter (faster; docs/performance.md).
        self.param("quadratic", zeros, (K, p, d, d), self.param_dtype)
        self.param("linear", zeros, (K, p, d), self.param_dtype)
        self.param("constant", zeros, (K, p), self.param_dtype)
        out = jnp.zeros((p,), self.param_dtype)
        if self.correction:
            h = jnp.concatenate([2.0 * tau[None] - 1.0, z])
            for _ in range(self.depth):
                h = jnp.tanh(nn.Dense(self.width, **dense)(h))
            out = out + nn.Dense(p, kernel_init=nn.initializers.zeros, **dense)(h)
        return out


@dataclasses.dataclass(frozen=True)
class ValueModel:
    """Static description of the value networks (hashable; part of the solver config).

    Attributes:
      state_dim, num_regimes: ``d``, ``m``.
      zero_sum: train one output per regime and set ``V_2 = -V_1``.
      time_basis: number of Chebyshev polynomials in ``tau`` for the quadratic head.
      width, depth: of the MLP correction.
      correction: whether the MLP correction is used.
    """

    state_dim: int
    num_regimes: int
    zero_sum: bool = False
    time_basis: int = 8
    width: int = 32
    depth: int = 2
    correction: bool = True

    @property
    def num_outputs(self) -> int:
        return 1 if self.zero_sum else 2

    def _head(self, dtype) -> _RegimeHead:
        return _RegimeHead(
            state_dim=self.state_dim,
            num_outputs=self.num_outputs,
            time_basis=self.time_basis,
            width=self.width,
            depth=self.depth,
            correction=self.correction,
            param_dtype=dtype,
        )

    def init(self, key: jax.Array, dtype) -> dict:
        """Parameters with a leading ``[m]`` axis on every leaf (one network per regime)."""
        head = self._head(dtype)
        keys = jax.random.split(key, self.num_regimes)
        tau, z = jnp.zeros((), dtype), jnp.zeros((self.state_dim,), dtype)
        return jax.vmap(lambda k: head.init(k, tau, z))(keys)

    def time_coefficients(self, params_i, norm: Normalization, t) -> QuadraticCoefficients:
        """Coefficients of the quadratic head at time ``t`` (shared by all states at ``t``).

        Computing them once per sampled time and applying them to many states turns the
        per-point ``[p, d, d]`` work of the quadratic head (forming ``A(tau)``, its gradient
        and Hessian products) into matrix products shared by the batch
        (`LayoutConfig.points_per_time`).

        Args:
          params_i: parameters of one regime (no leading ``[m]`` axis).
          norm: `Normalization`.
          t: [] time.
        """
        p, K = self.num_outputs, self.time_basis
        feats = self.time_features(norm, t)  # [K]
        heads = params_i["params"]
        basis = self.hessian_basis(params_i)  # [K, p, d, d]
        # Multiply-sum, not einsum: XLA:CPU feeds the einsum's cotangent (a dot over the times)
        # from a transposed [2 d^2, G] copy, slower at moderate d; large d uses the factored
        # form instead (`NetworkConfig.head_form`; docs/performance.md).
        return QuadraticCoefficients(
            hessian=jnp.sum(feats[:, None, None, None] * basis, axis=0),
            linear=(feats @ heads["linear"].reshape(K, -1)).reshape(p, self.state_dim),
            constant=feats @ heads["constant"],
        )

    def time_features(self, norm: Normalization, t) -> jax.Array:
        """``[K, *t.shape]`` Chebyshev features ``T_k(2 sigma - 1)``, ``sigma`` of `time_map`."""
        t = jnp.asarray(t, norm.value_scale.dtype)
        return _chebyshev(2.0 * time_map(norm, t)[0] - 1.0, self.time_basis)

    def hessian_basis(self, params_i) -> jax.Array:
        """``[K, p, d, d]`` symmetric basis matrices ``B_k`` of one regime's ``H(tau)``.

        One coefficient per monomial ``z_a z_b`` (``a <= b``): the upper triangle of the dense
        parameter blocks, symmetrised (independent of ``t``: under `vmap` over times and states
        it is formed once, and its transposes stay out of the per-time work and cotangents).
        """
        upper = jnp.triu(params_i["params"]["quadratic"])
        return upper + jnp.swapaxes(upper, -1, -2)

    def apply_hessian(self, params_i, coef: QuadraticCoefficients, v: jax.Array) -> jax.Array:
        """``[p, r, d]`` products ``H(tau) v`` of one regime's head with vectors ``v [r, d]``.

        Expanded form: ``coef.hessian @ v``. Factored form: ``sum_k T_k (B_k v)``; under `vmap`
        over the batch the basis is shared, so the products of all states are one
        ``[K p d, d] x [d, batch r]`` matrix product (and so are their cotangents).
        """
        if coef.hessian is not None:
            return jnp.einsum("pde,re->prd", coef.hessian, v)
        w = jnp.einsum("kpde,re->kprd", self.hessian_basis(params_i), v)
        return jnp.einsum("k,kprd->prd", coef.features, w)

    def factored_coefficients(
        self, params, norm: Normalization, t: jax.Array
    ) -> tuple[QuadraticCoefficients, QuadraticCoefficients]:
        """Factored-form coefficients of every regime at ``G`` times, and their time derivatives.

        The head's Hessian stays ``sum_k T_k(2 tau - 1) B_k`` (`QuadraticCoefficients`,
        factored form): only the ``[G, K]`` time features and the small linear and constant
        coefficients are evaluated per time. `NetworkConfig.head_form` says when the solver uses
        this form instead of `time_coefficients` per time.

        Args:
          params: parameters of all regimes (leading ``[m]`` axis on every leaf).
          norm: `Normalization`.
          t: [G] times.

        Returns:
          ``(coef, coef_t)``: `QuadraticCoefficients` with ``hessian=None``, ``features [G, m,
          K]``, ``linear [G, m, p, d]``, ``constant [G, m, p]``, and their derivatives in ``t``.
        """
        t = jnp.asarray(t, norm.value_scale.dtype)
        K, m, p, d = self.time_basis, self.num_regimes, self.num_outputs, self.state_dim
        G = t.shape[0]

        def features(s):
            return self.time_features(norm, s).T  # [G, K]

        feats, feats_t = jax.jvp(features, (t,), (jnp.ones_like(t),))
        heads = params["params"]
        small = jnp.concatenate(
            [
                jnp.swapaxes(heads["linear"], 0, 1).reshape(K, -1),
                jnp.swapaxes(heads["constant"], 0, 1).reshape(K, -1),
            ],
            axis=1,
        )  # [K, m p (d + 1)]

        def at(f):  # [G, K] features (or their derivatives) -> coefficients
            rows = f @ small
            return QuadraticCoefficients(
                hessian=None,
                linear=rows[:, : m * p * d].reshape(G, m, p, d),
                constant=rows[:, m * p * d :].reshape(G, m, p),
                features=jnp.broadcast_to(f[:, None, :], (G, m, K)),
            )

        return at(feats), at(feats_t)

    def regime_value_at(
        self, params_i, norm: Normalization, game, i, t, x, coef: QuadraticCoefficients
    ) -> jax.Array:
        """``[p]`` values in regime ``i`` with the quadratic head's coefficients given.

        Equal to `regime_value` when ``coef = time_coefficients(params_i, norm, t)``; the
        dependence on ``t`` through ``coef`` is left to the caller (pass the coefficients'
        time tangent to `jax.jvp` for the time derivative).
        """
        dtype = norm.value_scale.dtype
        t, x = jnp.asarray(t, dtype), jnp.asarray(x, dtype)
        tau = (norm.horizon - t) / norm.horizon
        z = (x - norm.center) / norm.state_scale
        Hz = self.apply_hessian(params_i, coef, z[None])[:, 0]  # [p, d]
        bracket = 0.5 * jnp.einsum("pd,d->p", Hz, z) + coef.linear @ z
        bracket = bracket + coef.constant
        if self.correction:
            bracket = bracket + self._head(dtype).apply(params_i, tau, z)
        psi = game.terminal_cost(x, i)[: self.num_outputs]
        return psi + norm.value_scale[: self.num_outputs, i] * time_map(norm, t)[1] * bracket

    def regime_value(self, params_i, norm: Normalization, game, i, t, x) -> jax.Array:
        """``[p]`` values in regime ``i`` (``p = 1`` leader only if zero-sum, else 2 players).

        Args:
          params_i: parameters of regime ``i`` (no leading ``[m]`` axis).
          norm: `Normalization`.
          game: the game (terminal cost).
          i: int scalar regime.
          t: [] time.  x: [d] state.
        """
        coef = self.time_coefficients(params_i, norm, t)
        return self.regime_value_at(params_i, norm, game, i, t, x, coef)

    def regime_remainder(
        self, params_i, norm: Normalization, game, i, t, x, *, with_terminal: bool
    ) -> jax.Array:
        """``[p]`` part of `regime_value` whose Hessian `regime_hessian_apply` leaves out.

        ``S tau NN(tau, z)`` (zero without the MLP correction) plus ``psi(x)`` when
        ``with_terminal`` (games without a ``terminal_hessian``). Same arguments as
        `regime_value`; ``regime_value = remainder + quadratic part`` up to terms linear in
        ``x``, so both have the same Hessian products once `regime_hessian_apply`'s are added.
        """
        dtype = norm.value_scale.dtype
        t, x = jnp.asarray(t, dtype), jnp.asarray(x, dtype)
        tau = (norm.horizon - t) / norm.horizon
        z = (x - norm.center) / norm.state_scale
        out = norm.value_scale[: self.num_outputs, i] * time_map(norm, t)[1]
        out = out * self._head(dtype).apply(params_i, tau, z)
        if with_terminal:
            out = out + game.terminal_cost(x, i)[: self.num_outputs]
        return out

    def regime_hessian_apply(
        self,
        params_i,
        norm: Normalization,
        game,
        i,
        t,
        coef: QuadraticCoefficients,
        v: jax.Array,
        *,
        with_terminal: bool,
    ) -> jax.Array:
        """``[p, r, d]`` exact ``x``-Hessian of the quadratic head (plus ``psi``'s if asked)
        applied to vectors ``v [r, d]``.

        The Hessian ``S tau H(tau) / s^2`` does not depend on ``x``: the solver applies it to
        the diffusion columns of all states as matrix products (`apply_hessian`; ``p n d^2``
        flops per point in the expanded form) instead of ``n`` Hessian-vector products through
        the network. With ``with_terminal`` the game's ``terminal_hessian(i)`` (constant, e.g.
        ``G + G^T`` of an `LQGame`) is added.
        """
        dtype = norm.value_scale.dtype
        t = jnp.asarray(t, dtype)
        phi = time_map(norm, t)[1]
        scale = norm.value_scale[: self.num_outputs, i] * phi / norm.state_scale**2
        terminal = (
            game.terminal_hessian(i)[: self.num_outputs].astype(dtype) if with_terminal else 0
        )
        if coef.hessian is not None:  # one [p, d, d] matrix per time: add before the products
            H = scale[:, None, None] * coef.hessian + terminal
            return jnp.einsum("pde,re->prd", H, v)
        out = scale[:, None, None] * self.apply_hessian(params_i, coef, v)
        if with_terminal:
            out = out + jnp.einsum("pde,re->prd", terminal, v)
        return out

    def expand(self, per_regime: jax.Array) -> jax.Array:
        """``[p, ...]`` -> ``[2, ...]`` (``V_2 = -V_1`` in a zero-sum game)."""
        if self.zero_sum:
            return jnp.concatenate([per_regime, -per_regime], axis=0)
        return per_regime

    def value(self, params, norm: Normalization, game, t, x) -> jax.Array:
        """[2, m] values of both players in every regime at ``(t [], x [d])``."""
        regimes = jnp.arange(self.num_regimes)
        v = jax.vmap(lambda p, i: self.regime_value(p, norm, game, i, t, x))(params, regimes)
        return self.expand(v.T)  # [2, m]
