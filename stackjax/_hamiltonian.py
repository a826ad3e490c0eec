"""Pointwise pre-Hamiltonian coefficients and pointwise equilibria (docs/math.md §3-4, §6).

Everything here is written for one state, one regime and both players; callers lift it with
`jax.vmap` over points and regimes. The second-order information of the value functions
enters only through the products ``M_k c^l`` and ``M_k D^l_a`` (§3.4), so fast operators can
supply them without forming Hessians.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from ._gibbs import cho_solve_lower as _cho_solve_factor
from ._gibbs import cholesky_lower as _cholesky
from ._gibbs import gibbs_entropy_payment
from ._protocol import Coefficients
from ._validation import check_positive, check_shape

__all__ = [
    "CONCEPTS",
    "PreHamiltonian",
    "PointEquilibrium",
    "HessianProducts",
    "hessian_products",
    "pre_hamiltonian",
    "pointwise_equilibrium",
    "regime_equilibrium",
    "well_posedness_margins",
]

CONCEPTS = ("stackelberg", "nash")


def _sym(matrix: jax.Array) -> jax.Array:
    return 0.5 * (matrix + jnp.swapaxes(matrix, -1, -2))


def check_concept(concept: str) -> None:
    if concept not in CONCEPTS:
        raise ValueError(
            f"`concept` must be one of {CONCEPTS}, got {concept!r}. Zero-sum games are flagged "
            "on the game (make_lq_game(..., zero_sum=True)) and solved with either concept."
        )


class HessianProducts(struct.PyTreeNode):
    """Products of both players' Hessians with the diffusion columns (docs/math.md §3.4).

    Attributes:
      Mc: [2, n, d] ``M_k c^l``.
      MD1: [2, n, d, k1] ``M_k D^l_1``.
      MD2: [2, n, d, k2] ``M_k D^l_2``.
    """

    Mc: jax.Array
    MD1: jax.Array
    MD2: jax.Array


def hessian_products(hessians: jax.Array, coef: Coefficients) -> HessianProducts:
    """`HessianProducts` from full Hessians ``M`` [2, d, d] (symmetrized first).

    Shapes are checked (at trace time); values are not."""
    check_shape(hessians, "hessians", shape=(None, coef.c.shape[-1], coef.c.shape[-1]))
    M = _sym(hessians)
    return HessianProducts(
        Mc=jnp.einsum("kde,le->kld", M, coef.c),
        MD1=jnp.einsum("kde,lea->klda", M, coef.D1),
        MD2=jnp.einsum("kde,lea->klda", M, coef.D2),
    )


class PreHamiltonian(struct.PyTreeNode):
    """Coefficients of ``h_k = sum_ab u_a.Rt^{ab}_k u_b + 2 sum_a u_a.rho^a_k + h0_k`` (§3.2).

    Attributes:
      R11: [2, k1, k1] ``Rt^{11}_k``.   R12: [2, k1, k2] ``Rt^{12}_k``.   R22: [2, k2, k2].
      rho1: [2, k1].   rho2: [2, k2].   h0: [2].
    """

    R11: jax.Array
    R12: jax.Array
    R22: jax.Array
    rho1: jax.Array
    rho2: jax.Array
    h0: jax.Array

    def evaluate(self, mean_leader: jax.Array, mean_follower: jax.Array) -> jax.Array:
        """[2] ``h_k(mu_1, mu_2)``."""
        u1, u2 = mean_leader, mean_follower
        return (
            jnp.einsum("a,kab,b->k", u1, self.R11, u1)
            + 2.0 * jnp.einsum("a,kab,b->k", u1, self.R12, u2)
            + jnp.einsum("a,kab,b->k", u2, self.R22, u2)
            + 2.0 * (self.rho1 @ u1 + self.rho2 @ u2)
            + self.h0
        )


def pre_hamiltonian(
    coef: Coefficients, gradients: jax.Array, hp: HessianProducts
) -> PreHamiltonian:
    """Pre-Hamiltonian coefficients of both players at one point and regime (docs/math.md §3.2).

    ``Rt^{ab}_k = R^{ab}_k + 1/2 sum_l (D^l_a)^T M_k D^l_b``,
    ``rho^a_k = w^a_k + 1/2 B_a^T y_k + 1/2 sum_l (D^l_a)^T M_k c^l``,
    ``h0_k = f0_k + y_k.beta + 1/2 sum_l c^l.M_k c^l``.

    Args:
      coef: the game's `Coefficients` at the point.
      gradients: [2, d] ``y_k = grad V_k``.
      hp: `HessianProducts` of ``M_k = Hess V_k``.

    Shapes are checked (at trace time); values are not.
    """
    check_shape(gradients, "gradients", shape=(hp.Mc.shape[0], coef.c.shape[-1]))
    R11 = coef.R11 + 0.5 * jnp.einsum("lda,kldb->kab", coef.D1, hp.MD1)
    R12 = coef.R12 + 0.5 * jnp.einsum("lda,kldb->kab", coef.D1, hp.MD2)
    R22 = coef.R22 + 0.5 * jnp.einsum("lda,kldb->kab", coef.D2, hp.MD2)
    rho1 = coef.w1 + 0.5 * gradients @ coef.B1 + 0.5 * jnp.einsum("lda,kld->ka", coef.D1, hp.Mc)
    rho2 = coef.w2 + 0.5 * gradients @ coef.B2 + 0.5 * jnp.einsum("lda,kld->ka", coef.D2, hp.Mc)
    h0 = coef.f0 + gradients @ coef.beta + 0.5 * jnp.einsum("ld,kld->k", coef.c, hp.Mc)
    return PreHamiltonian(R11=_sym(R11), R12=R12, R22=_sym(R22), rho1=rho1, rho2=rho2, h0=h0)


class PointEquilibrium(struct.PyTreeNode):
    """Pointwise equilibrium policies and optimized Hamiltonians (docs/math.md §4.1-4.4, §6).

    Attributes:
      mean_leader: [k1] ``mu_1^*``.
      mean_follower: [k2] ``mu_2^* = kappa + Lambda mu_1^*``.
      cov_leader: [k1, k1] ``Sigma_1^* = lambda_1/2 (Rt^{11}_1)^{-1}``.
      cov_follower: [k2, k2] ``Sigma_2^* = lambda_2/2 (Rt^{22}_2)^{-1}``.
      hamiltonian: [2] ``H^*_k``.
      reaction: [k2, k1] ``Lambda`` (follower mean reaction to the leader's mean).
      reaction_offset: [k2] ``kappa``.
    """

    mean_leader: jax.Array
    mean_follower: jax.Array
    cov_leader: jax.Array
    cov_follower: jax.Array
    hamiltonian: jax.Array
    reaction: jax.Array
    reaction_offset: jax.Array


def _cho_solve(matrix: jax.Array, rhs: jax.Array) -> jax.Array:
    return _cho_solve_factor(_cholesky(_sym(matrix)), rhs)


def pointwise_equilibrium(
    pre: PreHamiltonian,
    temperatures: jax.Array,
    *,
    concept: str = "stackelberg",
    zero_sum: bool = False,
) -> PointEquilibrium:
    """Equilibrium of the pointwise exploratory game (docs/math.md §4.3 algorithm).

    Follower: ``Lambda = -(Rt^{22}_2)^{-1} Rt^{21}_2``, ``kappa = -(Rt^{22}_2)^{-1} rho^2_2``.
    Stackelberg leader: ``mu_1 = -Rbar^{-1} rhobar`` against the reaction (§4.2); Nash: the
    block system of §4.6. Covariances ``Sigma_k = lambda_k/2 (Rt^{kk}_k)^{-1}``;
    ``H^*_k = h_k(mu) + tr(Rt^{11}_k Sigma_1) + tr(Rt^{22}_k Sigma_2) + entropy_k`` with
    ``entropy_k = -lambda_k/2 log det(2 pi e Sigma_k)`` (general sum), or in a zero-sum game
    (§6, follower coefficients = minus the leader's) the entropy book-keeping of the single
    criterion: ``entropy_1 = -lambda_1/2 log det(2 pi e Sigma_1) + lambda_2/2 log det(2 pi e
    Sigma_2) = -entropy_2``.

    Violated well-posedness (§4.5) shows as NaN (failed Cholesky); see
    `well_posedness_margins` for a graded diagnostic.

    Args:
      pre: `PreHamiltonian` at the point.
      temperatures: [2] ``(lambda_1, lambda_2)``.
      concept: ``"stackelberg"`` or ``"nash"`` (static).
      zero_sum: static flag of the game.

    The temperatures' shape is checked, their values (>= 0, finite) when concrete.
    """
    check_concept(concept)
    check_shape(jnp.asarray(temperatures), "temperatures", shape=(2,))
    check_positive(temperatures, "temperatures", allow_zero=True)
    k1, k2 = pre.R11.shape[-1], pre.R22.shape[-1]
    dtype = pre.h0.dtype
    R11_1, R12_1, R22_1 = pre.R11[0], pre.R12[0], pre.R22[0]
    R21_2, R22_2 = pre.R12[1].T, pre.R22[1]
    rho1_1, rho2_1, rho2_2 = pre.rho1[0], pre.rho2[0], pre.rho2[1]
    lam1, lam2 = temperatures[0], temperatures[1]

    # One Cholesky factor per matrix (WP-F: fails with NaN if Rt22_2 is not PD).
    chol_f = _cholesky(R22_2)
    solved = _cho_solve_factor(chol_f, jnp.concatenate([R21_2, rho2_2[:, None]], 1))
    reaction, offset = -solved[:, :k1], -solved[:, k1]  # Lambda [k2, k1], kappa [k2]
    if concept == "stackelberg":
        Rbar = R11_1 + R12_1 @ reaction + reaction.T @ R12_1.T + reaction.T @ R22_1 @ reaction
        rhobar = rho1_1 + reaction.T @ rho2_1 + (R12_1 + reaction.T @ R22_1) @ offset
        mean_leader = -_cho_solve(Rbar, rhobar)  # WP-L1
        mean_follower = offset + reaction @ mean_leader
    else:
        block = jnp.block([[R11_1, R12_1], [R21_2, R22_2]])
        means = -jnp.linalg.solve(block, jnp.concatenate([rho1_1, rho2_2]))
        mean_leader, mean_follower = means[:k1], means[k1:]

    # Leader covariance (WP-L2, only needed when lambda_1 > 0) and entropy payments.
    eye1, eye2 = jnp.eye(k1, dtype=dtype), jnp.eye(k2, dtype=dtype)
    explores = lam1 > 0
    chol_l = _cholesky(jnp.where(explores, R11_1, eye1))
    cov_leader = jnp.where(explores, 0.5 * lam1 * _cho_solve_factor(chol_l, eye1), 0.0)
    cov_follower = 0.5 * lam2 * _cho_solve_factor(chol_f, eye2)
    logdet_l = jnp.where(explores, 2.0 * jnp.sum(jnp.log(jnp.diagonal(chol_l))), 0.0)
    logdet_f = 2.0 * jnp.sum(jnp.log(jnp.diagonal(chol_f)))
    own_entropy = jnp.stack(
        [gibbs_entropy_payment(lam1, k1, logdet_l), gibbs_entropy_payment(lam2, k2, logdet_f)]
    )
    if zero_sum:
        value = own_entropy[0] - own_entropy[1]
        entropy = jnp.stack([value, -value])
    else:
        entropy = own_entropy
    exploration = jnp.einsum("kab,ba->k", pre.R11, cov_leader) + jnp.einsum(
        "kab,ba->k", pre.R22, cov_follower
    )
    hamiltonian = pre.evaluate(mean_leader, mean_follower) + exploration + entropy
    return PointEquilibrium(
        mean_leader=mean_leader,
        mean_follower=mean_follower,
        cov_leader=cov_leader,
        cov_follower=cov_follower,
        hamiltonian=hamiltonian,
        reaction=reaction,
        reaction_offset=offset,
    )


def regime_equilibrium(
    coef: Coefficients,
    gradients: jax.Array,
    hp: HessianProducts,
    temperatures: jax.Array,
    *,
    concept: str = "stackelberg",
    zero_sum: bool = False,
) -> PointEquilibrium:
    """Coefficients -> pre-Hamiltonian -> pointwise equilibrium at one point and regime.

    The one sequence every residual and policy of stackjax goes through (docs/math.md §3.2, §4.3).

    Args:
      coef: the game's `Coefficients` at the point (or a `sketch_diffusion` of them).
      gradients: [2, d] ``grad V_k``.
      hp: `HessianProducts` of ``Hess V_k``.
      temperatures: [2] ``(lambda_1, lambda_2)``.
      concept: ``"stackelberg"`` or ``"nash"`` (static).
      zero_sum: static flag of the game.
    """
    pre = pre_hamiltonian(coef, gradients, hp)
    return pointwise_equilibrium(pre, temperatures, concept=concept, zero_sum=zero_sum)


def well_posedness_margins(pre: PreHamiltonian, temperatures: jax.Array) -> jax.Array:
    """[3] smallest eigenvalues of ``Rt^{22}_2`` (WP-F), ``Rbar`` (WP-L1), ``Rt^{11}_1`` (WP-L2).

    All must be positive (the third only if ``lambda_1 > 0``; it is reported as +inf when
    ``lambda_1 = 0``). In a zero-sum game ``Rt^{22}_2 = -Rt^{22}_1`` so the first entry is the
    (ZS-F) margin and the third the (ZS-L) margin.
    """
    R22_2 = _sym(pre.R22[1])
    eig_f = jnp.linalg.eigvalsh(R22_2)[0]
    safe = jnp.where(eig_f > 0, R22_2, jnp.eye(R22_2.shape[-1], dtype=R22_2.dtype))
    reaction = -jnp.linalg.solve(safe, pre.R12[1].T)
    R12_1, R22_1 = pre.R12[0], pre.R22[0]
    Rbar = pre.R11[0] + R12_1 @ reaction + reaction.T @ R12_1.T + reaction.T @ R22_1 @ reaction
    eig_l1 = jnp.where(eig_f > 0, jnp.linalg.eigvalsh(_sym(Rbar))[0], -jnp.inf)
    eig_l2 = jnp.where(temperatures[0] > 0, jnp.linalg.eigvalsh(pre.R11[0])[0], jnp.inf)
    return jnp.stack([eig_f, eig_l1, eig_l2])
