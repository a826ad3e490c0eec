"""Second-order operators of the HJB residual without forming Hessians (docs/math.md §3.4).

The pre-Hamiltonian (§3.2) needs the Hessian ``M_k`` of each value function only through the
products ``M_k c^l`` (``n`` vectors) and ``M_k D^l_a`` (``n (k1 + k2)`` vectors): the trace
``1/2 tr(sigma sigma^T M)`` with state-dependent diffusion columns and the blocks
``D^T M D``, ``D^T M c``. Ways to get them, selected by ``method``:

- ``"hvp"`` (default): exact, picks the cheaper of two Hessian-vector-product plans by the
  number ``r`` of directions (``n`` columns ``c^l``, plus the ``n (k1 + k2)`` columns of ``D``
  when the diffusion is controlled): ``r <= 2 d``: ``"forward_over_reverse"`` along the ``r``
  directions; ``r > 2 d``: ``"hvp_hessian"`` (``d`` HVPs along the axes, then contracted).
  Cost grows with ``min(r, 2 d)`` HVPs, never with ``d^2`` HVPs. (The threshold is ``2 d``,
  not ``d``, because the contraction makes the axis plan cost more than ``d`` HVPs along
  given directions; docs/performance.md.)
- ``"forward_over_reverse"``: ``jvp(grad V)(x; v)`` vmapped over the ``r`` directions; the
  primal gradient is shared by all directions.
- ``"reverse_over_forward"``: ``grad_x (v . grad V)`` via ``jacrev`` of a ``jvp``, vmapped
  over the directions (the gradient is one extra reverse pass).
- ``"linearize"``: one ``jax.linearize`` of ``grad V`` at ``x``, its linear map vmapped over
  the directions.
- ``"hvp_hessian"``: forward-over-reverse along the ``d`` coordinate axes (the full Hessian,
  sharing the gradient's primal), contracted with the directions: best when ``r > d``.
- ``"hessian"``: the reference ``jax.hessian`` (``d`` HVPs plus a ``d x d`` matrix) contracted
  with the columns; for tests and small ``d``.
- ``"hutchinson"``: an unbiased randomized sketch for very high ``d`` or ``n``: the ``n``
  diffusion columns are replaced by ``P`` random combinations
  ``c~^p = sum_l z_lp c^l / sqrt(P)`` (same for ``D``) with Rademacher ``z`` drawn from a key.
  Every second-order term of the pre-Hamiltonian is a sum ``sum_l u_l^T M v_l`` and
  ``E[sum_p u~_p^T M v~_p] = sum_l u_l^T M v_l``, so ``Rt``, ``rho`` and ``h0`` are unbiased;
  the cost grows with ``P (1 + k1 + k2)`` whatever ``n``. (``H^*`` itself is nonlinear in
  ``Rt`` when the diffusion is controlled, so only with ``D = 0`` is the residual unbiased.)

All functions here are written for one point, one regime and a value function
``value_fn(x [d]) -> [p]`` of ``p`` outputs (the players); callers vmap over points and regimes.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from ._hamiltonian import HessianProducts, pointwise_equilibrium, pre_hamiltonian
from ._hamiltonian import hessian_products as _products_from_hessians
from ._protocol import Coefficients
from ._validation import as_key, check_setting, check_shape, scalar_setting

__all__ = [
    "OPERATOR_METHODS",
    "PRODUCT_METHODS",
    "gradient_and_products",
    "sketch_diffusion",
    "diffusion_directions",
    "principal_symbol",
    "parabolicity_margin",
    "diffusion_margin",
]

OPERATOR_METHODS = ("hvp", "hessian", "hutchinson")
PRODUCT_METHODS = (
    "hvp",
    "forward_over_reverse",
    "reverse_over_forward",
    "linearize",
    "hvp_hessian",
    "hessian",
)


def diffusion_directions(coef: Coefficients, controlled: bool = True) -> jax.Array:
    """Directions whose Hessian products the pre-Hamiltonian needs.

    Args:
      coef: `Coefficients` with ``c [n, d]``, ``D1 [n, d, k1]``, ``D2 [n, d, k2]``.
      controlled: include the control columns of ``D`` (static). With ``False`` only the
        ``n`` columns ``c^l`` are returned (valid when ``D1 = D2 = 0``).

    Returns:
      ``[n (1 + k1 + k2), d]`` (or ``[n, d]``): rows ``c^l``, then ``D1[l][:, a]`` (``l``
      major), then ``D2[l][:, b]``.
    """
    if not controlled:
        return coef.c
    n, d = coef.c.shape
    d1 = jnp.swapaxes(coef.D1, -1, -2).reshape(-1, d)  # [n k1, d]
    d2 = jnp.swapaxes(coef.D2, -1, -2).reshape(-1, d)  # [n k2, d]
    return jnp.concatenate([coef.c, d1, d2], axis=0)


def _split_products(hv: jax.Array, coef: Coefficients, controlled: bool) -> HessianProducts:
    """``hv [p, r, d]`` (products along `diffusion_directions`) -> `HessianProducts`."""
    p = hv.shape[0]
    n, d = coef.c.shape
    k1, k2 = coef.D1.shape[-1], coef.D2.shape[-1]
    Mc = hv[:, :n]
    if not controlled:
        return HessianProducts(
            Mc=Mc,
            MD1=jnp.zeros((p, n, d, k1), hv.dtype),
            MD2=jnp.zeros((p, n, d, k2), hv.dtype),
        )
    MD1 = jnp.swapaxes(hv[:, n : n + n * k1].reshape(p, n, k1, d), -1, -2)
    MD2 = jnp.swapaxes(hv[:, n + n * k1 :].reshape(p, n, k2, d), -1, -2)
    return HessianProducts(Mc=Mc, MD1=MD1, MD2=MD2)


def _hvp_along(value_fn, x: jax.Array, directions: jax.Array, method: str):
    """``(grad [p, d], Hessian products [p, r, d])`` of ``value_fn`` along ``directions [r, d]``."""
    grad_fn = jax.jacrev(value_fn)  # x -> [p, d]
    if method == "forward_over_reverse":
        # The primal gradient does not depend on the direction: computed once, not batched.
        return jax.vmap(lambda v: jax.jvp(grad_fn, (x,), (v,)), out_axes=(None, 1))(directions)
    if method == "linearize":
        grads, linear = jax.linearize(grad_fn, x)
        return grads, jax.vmap(linear, out_axes=1)(directions)

    # reverse_over_forward: d/dx of the directional derivative v . grad V (p outputs).
    def directional(v):
        return jax.jacrev(lambda z: jax.jvp(value_fn, (z,), (v,))[1])(x)

    return grad_fn(x), jax.vmap(directional, out_axes=1)(directions)


def gradient_and_products(
    value_fn: Callable[[jax.Array], jax.Array],
    x: jax.Array,
    coef: Coefficients,
    *,
    method: str = "hvp",
    controlled: bool = True,
) -> tuple[jax.Array, HessianProducts]:
    """Gradients and Hessian products of a vector of value functions at one point.

    Args:
      value_fn: ``x [d] -> [p]`` (e.g. both players' values in one regime).
      x: [d] state.
      coef: the game's `Coefficients` at ``x`` (or a `sketch_diffusion` of them).
      method: one of `PRODUCT_METHODS` (static; see the module docstring): ``"hvp"`` (exact,
        default, picks ``"forward_over_reverse"`` or ``"hvp_hessian"`` by the number of
        directions), an explicit exact plan, or ``"hessian"`` (``jax.hessian`` reference).
        For the stochastic estimator sketch the coefficients first (`sketch_diffusion`) and
        use ``"hvp"``.
      controlled: static; ``False`` skips the ``D`` columns (then ``MD1``, ``MD2`` are zero,
        which is exact when ``D1 = D2 = 0``).

    Returns:
      ``(gradients [p, d], HessianProducts)`` with ``Mc [p, n, d]``, ``MD1 [p, n, d, k1]``,
      ``MD2 [p, n, d, k2]`` for ``M_k = Hess value_fn(x)[k]``.
    """
    check_shape(jnp.asarray(x), "x", shape=(coef.c.shape[-1],))
    if method not in PRODUCT_METHODS:
        if method in OPERATOR_METHODS:  # "hutchinson"
            raise ValueError(
                "gradient_and_products computes exact products; for method='hutchinson' "
                "sketch the coefficients with `sketch_diffusion(coef, key, num_probes)` and "
                "use 'hvp'."
            )
        raise ValueError(
            f"`method` must be one of {PRODUCT_METHODS}, got {method!r}. Use 'hvp' (exact, "
            "default) or 'hessian' (reference, small d)."
        )
    if method == "hessian":
        grads = jax.jacrev(value_fn)(x)
        hess = jax.hessian(value_fn)(x)  # [p, d, d]
        hp = _products_from_hessians(hess, coef)
        if not controlled:
            hp = hp.replace(MD1=jnp.zeros_like(hp.MD1), MD2=jnp.zeros_like(hp.MD2))
        return grads, hp
    directions = diffusion_directions(coef, controlled)  # [r, d]
    num_directions, d = directions.shape
    if method == "hvp":
        method = "hvp_hessian" if num_directions > 2 * d else "forward_over_reverse"
    if method == "hvp_hessian":
        eye = jnp.eye(d, dtype=x.dtype)
        grads, hess = _hvp_along(value_fn, x, eye, "forward_over_reverse")  # [p, d, d]
        hp = _products_from_hessians(hess, coef)
        if not controlled:
            hp = hp.replace(MD1=jnp.zeros_like(hp.MD1), MD2=jnp.zeros_like(hp.MD2))
        return grads, hp
    grads, hv = _hvp_along(value_fn, x, directions, method)  # [p, d], [p, r, d]
    return grads, _split_products(hv, coef, controlled)


def sketch_diffusion(coef: Coefficients, key: jax.Array, num_probes: int) -> Coefficients:
    """Random sketch of the diffusion columns for the stochastic (Hutchinson) operator.

    ``c~^p = sum_l z_lp c^l / sqrt(P)``, ``D~^p_a = sum_l z_lp D^l_a / sqrt(P)`` with
    independent Rademacher ``z [n, P]`` from ``key`` (consumed). Since ``E[z z^T] = P I``,
    every bilinear sum ``sum_l u_l^T M v_l`` over the columns is estimated without bias by the
    same sum over the ``P`` sketched columns; pass the result to `gradient_and_products` and
    to `pre_hamiltonian` (only ``c``, ``D1``, ``D2`` change; use the original coefficients
    for anything else, e.g. simulation).

    Args:
      coef: `Coefficients` at the point (``c [n, d]``, ``D1 [n, d, k1]``, ``D2 [n, d, k2]``).
      key: PRNG key (consumed).
      num_probes: ``P`` (static).

    Returns:
      `Coefficients` with ``c [P, d]``, ``D1 [P, d, k1]``, ``D2 [P, d, k2]``.
    """
    check_setting("`num_probes`", scalar_setting(num_probes), "int", 1)
    key = as_key(key)
    n = coef.c.shape[0]
    z = jax.random.rademacher(key, (n, num_probes), dtype=coef.c.dtype)
    z = z / jnp.sqrt(jnp.asarray(num_probes, coef.c.dtype))
    return coef.replace(
        c=jnp.einsum("lp,ld->pd", z, coef.c),
        D1=jnp.einsum("lp,lda->pda", z, coef.D1),
        D2=jnp.einsum("lp,lda->pda", z, coef.D2),
    )


def principal_symbol(
    coef: Coefficients,
    gradients: jax.Array,
    hp: HessianProducts,
    temperatures: jax.Array,
    xi: jax.Array,
    *,
    concept: str = "stackelberg",
    zero_sum: bool = False,
) -> jax.Array:
    """[2, 2] principal symbol ``A_kk'(xi) = d/de H^*_k(.., M_k' + e xi xi^T, ..)`` (§5.4).

    Forward-mode derivative of the optimised Hamiltonians along the rank-one perturbation of
    each player's Hessian; the perturbation enters the products as ``xi (xi . c^l)`` and
    ``xi (xi^T D^l_a)``.

    Args:
      coef: `Coefficients` at the point.  gradients: [2, d].  hp: `HessianProducts` [2, ...].
      temperatures: [2].  xi: [d] direction.
      concept, zero_sum: as in `pointwise_equilibrium` (static).
    """
    d_c = jnp.einsum("ld,d->l", coef.c, xi)[:, None] * xi[None, :]  # [n, d]
    d_1 = xi[None, :, None] * jnp.einsum("d,lda->la", xi, coef.D1)[:, None, :]  # [n, d, k1]
    d_2 = xi[None, :, None] * jnp.einsum("d,lda->la", xi, coef.D2)[:, None, :]  # [n, d, k2]

    def hamiltonians(eps):  # eps [2]: perturbation size of each player's Hessian
        perturbed = HessianProducts(
            Mc=hp.Mc + eps[:, None, None] * d_c[None],
            MD1=hp.MD1 + eps[:, None, None, None] * d_1[None],
            MD2=hp.MD2 + eps[:, None, None, None] * d_2[None],
        )
        pre = pre_hamiltonian(coef, gradients, perturbed)
        eq = pointwise_equilibrium(pre, temperatures, concept=concept, zero_sum=zero_sum)
        return eq.hamiltonian

    return jax.jacfwd(hamiltonians)(jnp.zeros((2,), xi.dtype))


def _symbol_margin(A: jax.Array, zero_sum: bool) -> jax.Array:
    """Smallest real part of the eigenvalues of the symbol (scalar symbol if zero-sum)."""
    if zero_sum:  # one HJBI: perturbing V_1 by delta perturbs V_2 = -V_1 by -delta.
        return A[0, 0] - A[0, 1]
    half_trace = 0.5 * (A[0, 0] + A[1, 1])
    det = A[0, 0] * A[1, 1] - A[0, 1] * A[1, 0]
    disc = half_trace**2 - det
    return half_trace - jnp.sqrt(jnp.maximum(disc, 0.0))


def parabolicity_margin(
    coef: Coefficients,
    gradients: jax.Array,
    hp: HessianProducts,
    temperatures: jax.Array,
    key: jax.Array,
    *,
    num_directions: int = 8,
    refine_steps: int = 4,
    concept: str = "stackelberg",
    zero_sum: bool = False,
) -> jax.Array:
    """Parabolicity margin ``min_{|xi|=1} min Re eig A(xi)`` at one point (docs/math.md §5.4).

    The minimum is taken over the ``d`` coordinate axes and ``num_directions`` random unit
    directions (from ``key``, consumed), followed by ``refine_steps`` projected gradient steps
    from the best one. Negative: the coupled system is not parabolic there and a small residual
    does not imply a small error; zero: degenerate diffusion in some direction (harmless).

    Returns:
      [] the margin (an upper bound of the exact minimum over the sphere).
    """
    d = coef.c.shape[-1]
    dtype = gradients.dtype

    def margin(xi):
        xi = xi / jnp.linalg.norm(xi)
        A = principal_symbol(
            coef, gradients, hp, temperatures, xi, concept=concept, zero_sum=zero_sum
        )
        return _symbol_margin(A, zero_sum)

    random = jax.random.normal(as_key(key), (num_directions, d), dtype)
    candidates = jnp.concatenate([jnp.eye(d, dtype=dtype), random], axis=0)
    margins = jax.vmap(margin)(candidates)
    xi = candidates[jnp.argmin(margins)]
    xi = xi / jnp.linalg.norm(xi)
    best = jnp.min(margins)
    step = jnp.asarray(0.3, dtype)

    def refine(_, carry):  # projected descent on the sphere, step halved on failure
        xi, best, step = carry
        value, grad = jax.value_and_grad(margin)(xi)
        grad = grad - (grad @ xi) * xi  # tangent to the sphere
        trial = xi - step * grad / jnp.maximum(jnp.linalg.norm(grad), 1e-30)
        trial = trial / jnp.linalg.norm(trial)
        trial_value = margin(trial)
        better = trial_value < value
        xi = jnp.where(better, trial, xi)
        best = jnp.minimum(best, jnp.where(better, trial_value, value))
        return xi, best, jnp.where(better, step, 0.5 * step)

    _, best, _ = jax.lax.fori_loop(0, refine_steps, refine, (xi, best, step))
    return best


def diffusion_margin(coef: Coefficients, eq) -> jax.Array:
    """``1/2 lambda_min(E[sigma sigma^T])`` under the equilibrium policies (§2.3, §5.4).

    This is the exact parabolicity margin when the diffusion is uncontrolled (symbol
    ``1/2 |sigma^T xi|^2 I``) and in zero-sum games (scalar symbol
    ``1/2 xi^T E[sigma sigma^T] xi``); it is ``>= 0``, zero for degenerate noise.

    Args:
      coef: `Coefficients` at the point.
      eq: `PointEquilibrium` at the point (means and covariances of both players).
    """
    mean_cols = coef.diffusion(eq.mean_leader, eq.mean_follower)  # [n, d]
    cov = mean_cols.T @ mean_cols
    cov = cov + jnp.einsum("lda,ab,leb->de", coef.D1, eq.cov_leader, coef.D1)
    cov = cov + jnp.einsum("lda,ab,leb->de", coef.D2, eq.cov_follower, coef.D2)
    # Positive semidefinite by construction: clip eigensolver round-off below zero.
    return jnp.maximum(0.5 * jnp.linalg.eigvalsh(0.5 * (cov + cov.T))[0], 0.0)
