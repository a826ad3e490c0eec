"""Built-in example games.

All examples are `LQGame`s with an exact Riccati reference (`riccati_reference`):

- `scalar_game`: d = 1, two regimes, a follower cross term (a genuine Stackelberg game).
- `random_game`: stable dynamics and well-posed costs for any ``d`` and ``m``.
- `controlled_diffusion_game`: controls enter the diffusion; extra uncontrolled additive noise
  keeps the coupled system parabolic on the evaluation distribution (docs/math.md §5.4).
- `zero_sum_game`: robust control against a disturbance (docs/math.md §6).
- `cross_term_game`: a follower cost cross term ``R12`` makes Stackelberg differ from Nash.

`LQ_EXAMPLES` maps names to zero-argument constructors (used by the command line).
"""

from __future__ import annotations

import jax
import numpy as np

from .._game import LQGame, make_lq_game
from .._validation import as_key

__all__ = [
    "LQ_EXAMPLES",
    "scalar_game",
    "random_game",
    "controlled_diffusion_game",
    "zero_sum_game",
    "cross_term_game",
]


def _two_player(leader, follower) -> np.ndarray:
    return np.stack([np.asarray(leader, float), np.asarray(follower, float)])


def scalar_game(lam=(0.5, 0.5)) -> LQGame:
    """Scalar state, two regimes (calm, volatile), one control per player, T = 1.

    ``dX = (a_i X + u1 + 0.5 u2 + b_i) dt + (sigma_i + 0.2 X) dW``; the follower pays
    ``2 * 0.3 u1 u2`` (cross term), so its reaction depends on the leader's action.
    """
    m = 2
    Gamma = np.array([[-0.5, 0.5], [1.0, -1.0]])
    A = np.array([-0.3, -0.1]).reshape(m, 1, 1)
    B1 = np.ones((m, 1, 1))
    B2 = np.full((m, 1, 1), 0.5)
    b = np.array([0.1, -0.1]).reshape(m, 1)
    C = np.full((m, 1, 1, 1), 0.2)
    s = np.array([0.3, 0.6]).reshape(m, 1, 1)
    Q = _two_player(np.array([1.0, 2.0]).reshape(m, 1, 1), np.array([0.5, 0.5]).reshape(m, 1, 1))
    R11 = _two_player(np.ones((m, 1, 1)), np.full((m, 1, 1), 0.2))
    R12 = _two_player(np.zeros((m, 1, 1)), np.full((m, 1, 1), 0.3))
    R22 = _two_player(np.full((m, 1, 1), 0.5), np.ones((m, 1, 1)))
    q = _two_player(np.full((m, 1), 0.1), np.full((m, 1), -0.2))
    r2 = _two_player(np.zeros((m, 1)), np.full((m, 1), 0.1))
    G = _two_player(np.ones((m, 1, 1)), np.full((m, 1, 1), 0.5))
    return make_lq_game(
        T=1.0, Gamma=Gamma, A=A, B1=B1, B2=B2, b=b, C=C, s=s, Q=Q, R11=R11, R12=R12,
        R22=R22, q=q, r2=r2, G=G, lam=lam, x0=np.array([1.0]),
    )  # fmt: skip


def _generator(rng: np.random.Generator, m: int, rate: float = 1.0) -> np.ndarray:
    off = rng.uniform(0.2, 1.0, (m, m)) * rate
    np.fill_diagonal(off, 0.0)
    return off - np.diag(off.sum(axis=1))


def _spd(rng, k, scale=1.0, floor=0.5):
    a = rng.normal(size=(k, k)) / np.sqrt(k)
    return scale * (a @ a.T + floor * np.eye(k))


def random_game(
    key: jax.Array,
    d: int = 4,
    m: int = 2,
    *,
    leader_dim: int = 2,
    follower_dim: int = 2,
    noise_dim: int | None = None,
    controlled_diffusion: bool = False,
    cross_term: float = 0.3,
    lam=(0.1, 0.1),
    horizon: float = 1.0,
) -> LQGame:
    """A random regime-switching LQ Stackelberg game that is well posed for any ``d, m``.

    Construction: drift ``A_i = -0.5 I + 0.5 N / sqrt(d)`` (stable on average), control
    matrices ``N / sqrt(d)``, state costs and terminal costs ``I + W W^T / d`` (positive
    definite), each player's joint control cost positive definite, and a follower cross term of
    size ``cross_term`` (so Stackelberg differs from Nash). With ``controlled_diffusion`` each
    of the first two noise columns carries small control parts, and isotropic uncontrolled
    noise (0.6 per coordinate) is added to keep the coupled system parabolic (docs/math.md §5.4).

    Args:
      key: PRNG key (consumed) fixing the draw.
      d, m: state dimension and number of regimes.
      leader_dim, follower_dim: control dimensions ``k1, k2``.
      noise_dim: number of noise columns ``n`` (default ``d``).
      controlled_diffusion: whether controls enter the diffusion.
      cross_term: scale of the follower's cross cost ``R12`` of the follower.
      lam: temperatures ``(lambda_1, lambda_2)``.
      horizon: ``T``.
    """
    if d < 1 or m < 1:
        raise ValueError(f"random_game needs d >= 1 and m >= 1, got d={d}, m={m}.")
    key = as_key(key)
    # The seed is drawn with 64-bit integers whatever the mode: `randint` draws differently for
    # int32 and int64, and the game must be the same (up to rounding) in float32 and float64.
    with jax.enable_x64(True):
        seed = int(jax.random.randint(key, (), 0, 2**31 - 1, dtype=np.int64))
    rng = np.random.default_rng(seed)
    k1, k2 = leader_dim, follower_dim
    n = d if noise_dim is None else noise_dim
    Gamma = _generator(rng, m) if m > 1 else np.zeros((1, 1))
    A = -0.5 * np.eye(d) + 0.5 * rng.normal(size=(m, d, d)) / np.sqrt(d)
    B1 = rng.normal(size=(m, d, k1)) / np.sqrt(d)
    B2 = rng.normal(size=(m, d, k2)) / np.sqrt(d)
    b = 0.1 * rng.normal(size=(m, d))
    C = 0.1 * rng.normal(size=(m, n, d, d)) / np.sqrt(d)
    s = 0.3 * rng.normal(size=(m, n, d)) / np.sqrt(max(n, 1))
    D1 = np.zeros((m, n, d, k1))
    D2 = np.zeros((m, n, d, k2))
    if controlled_diffusion:
        iso = 0.6 * np.eye(d)  # uncontrolled isotropic columns appended below
        D1c = 0.3 * rng.normal(size=(m, 2, d, k1)) / np.sqrt(d)
        D2c = 0.3 * rng.normal(size=(m, 2, d, k2)) / np.sqrt(d)
        C = np.concatenate([C, np.zeros((m, 2 + d, d, d))], axis=1)
        s = np.concatenate([s, np.zeros((m, 2, d)), np.broadcast_to(iso, (m, d, d))], axis=1)
        D1 = np.concatenate([D1, D1c, np.zeros((m, d, d, k1))], axis=1)
        D2 = np.concatenate([D2, D2c, np.zeros((m, d, d, k2))], axis=1)

    def state_cost():
        w = rng.normal(size=(m, d, d))
        return np.eye(d) + np.einsum("mij,mkj->mik", w, w) / d

    Q = _two_player(state_cost(), 0.5 * state_cost())
    G = _two_player(0.5 * state_cost(), 0.5 * state_cost())
    S1 = 0.1 * rng.normal(size=(2, m, k1, d)) / np.sqrt(d)
    S2 = 0.1 * rng.normal(size=(2, m, k2, d)) / np.sqrt(d)
    q = 0.1 * rng.normal(size=(2, m, d))
    r1 = 0.1 * rng.normal(size=(2, m, k1))
    r2 = 0.1 * rng.normal(size=(2, m, k2))
    R11 = np.zeros((2, m, k1, k1))
    R12 = np.zeros((2, m, k1, k2))
    R22 = np.zeros((2, m, k2, k2))
    for i in range(m):
        joint = _spd(rng, k1 + k2, floor=1.0)  # leader's joint control cost: positive definite
        R11[0, i], R12[0, i], R22[0, i] = joint[:k1, :k1], joint[:k1, k1:], joint[k1:, k1:]
        R11[1, i] = 0.3 * _spd(rng, k1)
        R22[1, i] = _spd(rng, k2, floor=1.0)
        R12[1, i] = cross_term * rng.normal(size=(k1, k2)) / np.sqrt(max(k1, k2))
    return make_lq_game(
        T=horizon, Gamma=Gamma, A=A, B1=B1, B2=B2, b=b, C=C, D1=D1, D2=D2, s=s, Q=Q, S1=S1,
        S2=S2, R11=R11, R12=R12, R22=R22, q=q, r1=r1, r2=r2, G=G, lam=lam,
        x0=0.5 * np.ones(d) / np.sqrt(d),
    )  # fmt: skip


def controlled_diffusion_game(lam=(0.3, 0.3)) -> LQGame:
    """d = 2, m = 2, both controls enter two noise columns; isotropic uncontrolled noise.

    Fixed draw of `random_game` with ``controlled_diffusion=True`` (key 7).
    """
    return random_game(
        jax.random.key(7), d=2, m=2, leader_dim=1, follower_dim=1, controlled_diffusion=True,
        lam=lam,
    )  # fmt: skip


def zero_sum_game(lam=(0.2, 0.1), gamma: float = 2.0) -> LQGame:
    """Robust control (docs/math.md §6): a controller (leader) against a disturbance (follower).

    d = 2, m = 2 (nominal and stressed dynamics). The disturbance enters the drift and pays
    ``-gamma^2 |u2|^2`` in the controller's cost (attenuation level ``gamma``).
    """
    m, d = 2, 2
    Gamma = np.array([[-0.4, 0.4], [0.8, -0.8]])
    A = np.stack([[[-0.2, 0.3], [0.0, -0.4]], [[0.1, 0.5], [-0.2, -0.1]]])
    B1 = np.stack([np.eye(d), 0.7 * np.eye(d)])
    B2 = np.stack([[[1.0], [0.5]], [[1.0], [1.0]]])
    s = np.stack([0.3 * np.eye(d), 0.5 * np.eye(d)])
    Q = np.zeros((2, m, d, d))
    Q[0] = np.stack([np.eye(d), 2.0 * np.eye(d)])
    R11 = np.zeros((2, m, d, d))
    R11[0] = np.eye(d)
    R22 = np.zeros((2, m, 1, 1))
    R22[0] = -(gamma**2) * np.ones((m, 1, 1))
    G = np.zeros((2, m, d, d))
    G[0] = np.eye(d)
    q = np.zeros((2, m, d))
    q[0] = 0.1
    return make_lq_game(
        T=1.0, Gamma=Gamma, A=A, B1=B1, B2=B2, s=s, Q=Q, R11=R11, R22=R22, G=G, q=q, lam=lam,
        x0=np.array([1.0, -0.5]), zero_sum=True,
    )  # fmt: skip


def cross_term_game(lam=(0.2, 0.2), cross: float = 0.8) -> LQGame:
    """d = 2, m = 2, where the follower's cost cross term R12 makes Stackelberg != Nash."""
    m, d = 2, 2
    Gamma = np.array([[-1.0, 1.0], [0.5, -0.5]])
    A = np.stack([[[-0.3, 0.2], [0.1, -0.5]], [[0.0, 0.4], [-0.3, -0.2]]])
    B1 = np.stack([[[1.0], [0.0]], [[1.0], [0.5]]])
    B2 = np.stack([[[0.3], [1.0]], [[0.0], [1.0]]])
    s = np.stack([0.3 * np.eye(d), 0.4 * np.eye(d)])
    Q = _two_player(np.stack([np.eye(d), 1.5 * np.eye(d)]), np.stack([np.diag([0.5, 1.0])] * m))
    R11 = _two_player(np.ones((m, 1, 1)), np.full((m, 1, 1), 0.5))
    R12 = _two_player(np.full((m, 1, 1), 0.2), np.full((m, 1, 1), cross))
    R22 = _two_player(np.full((m, 1, 1), 0.8), np.ones((m, 1, 1)))
    G = _two_player(np.stack([np.eye(d)] * m), np.stack([0.5 * np.eye(d)] * m))
    q = _two_player(np.full((m, d), 0.2), np.full((m, d), -0.1))
    return make_lq_game(
        T=1.0, Gamma=Gamma, A=A, B1=B1, B2=B2, s=s, Q=Q, R11=R11, R12=R12, R22=R22, G=G, q=q,
        lam=lam, x0=np.array([1.0, 0.5]),
    )  # fmt: skip


LQ_EXAMPLES = {
    "scalar": scalar_game,
    "random": lambda: random_game(jax.random.key(0)),
    "controlled-diffusion": controlled_diffusion_game,
    "zero-sum": zero_sum_game,
    "cross-term": cross_term_game,
}
