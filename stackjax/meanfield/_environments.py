"""MFGLib's environments as pure JAX functions (same names, arguments and defaults).

Each constructor returns a `MeanFieldGame` whose reward and kernel equal MFGLib's tensors
(MFGLib returns kernels as ``[*S', *S, *A]``; here ``[S, A, S']`` with states and actions
flattened row-major). MFGLib's quirks are kept so that the two agree exactly:

- ``beach_bar``: the distance to the bar is measured on a torus but moves are clipped at the
  ends of the beach (no wrap-around); the crowd term is ``-log(mu + log_eps)``.
- ``building_evacuation``: the crowd term is ``-eta log(max(mu, log_eps))`` (clamped, not
  shifted as in ``beach_bar``); "downstairs" works only at tile (0, 0) and "upstairs" only
  at the opposite corner.
- ``linear_quadratic``: the noise support is ``sigma * {-3..3}`` and is multiplied by
  ``sigma sqrt(delta)`` again (variance ``sigma^4 delta``); next states are rounded half to
  even and clipped; the terminal reward is not multiplied by ``delta``.
- ``equilibrium_price``: the price uses the *joint* mean field (expected consumption).
- ``crowd_motion`` takes the bar's path as an input (MFGLib draws it with torch's global RNG).
- ``random_linear`` takes its four random tensors as inputs (`random_linear` draws them
  from a JAX key).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from .._validation import as_key
from ._game import MeanFieldGame, make_mean_field_game

__all__ = [
    "beach_bar",
    "building_evacuation",
    "conservative_treasure_hunting",
    "crowd_motion",
    "equilibrium_price",
    "left_right",
    "linear_quadratic",
    "random_linear",
    "rock_paper_scissors",
    "susceptible_infected",
]


def _initial(mu0, num_states: int):
    if mu0 is None or (isinstance(mu0, str) and mu0 == "uniform"):
        return np.full(num_states, 1.0 / num_states)
    return mu0


def _constant_kernel(params, t, joint, leader):
    """A kernel that depends on neither time nor the mean field: ``params["kernel"]``."""
    return params["kernel"].astype(joint.dtype)


# ---------------------------------------------------------------- left-right and friends


def _next_is_one_plus_action(num_states: int, num_actions: int) -> np.ndarray:
    kernel = np.zeros((num_states, num_actions, num_states))
    for a in range(num_actions):
        kernel[:, a, 1 + a] = 1.0
    return kernel


def _left_right_reward(params, t, joint, leader):
    mu = joint.sum(-1)
    per_state = jnp.stack([jnp.zeros_like(mu[0]), -mu[1], -2.0 * mu[2]])
    return jnp.broadcast_to(per_state[:, None], joint.shape)


def left_right(mu0=(1.0, 0.0, 0.0), *, temperature: float = 0.0) -> MeanFieldGame:
    """Left-right (MFGLib ``Environment.left_right``): ``T = 1``, states start/left/right.

    From the start state every agent goes left (action 0) or right (action 1) and then pays
    ``mu_L`` at left or ``2 mu_R`` at right.
    """
    return make_mean_field_game(
        initial=mu0,
        params={"kernel": jnp.asarray(_next_is_one_plus_action(3, 2))},
        reward_fn=_left_right_reward,
        transition_fn=_constant_kernel,
        horizon=2,
        state_shape=(3,),
        action_shape=(2,),
        temperature=temperature,
        name="left_right",
    )


def _rps_reward(params, t, joint, leader):
    mu = joint.sum(-1)
    per_state = jnp.stack(
        [
            jnp.zeros_like(mu[0]),
            2.0 * mu[3] - mu[2],
            4.0 * mu[1] - 2.0 * mu[3],
            6.0 * mu[2] - 3.0 * mu[1],
        ]
    )
    return jnp.broadcast_to(per_state[:, None], joint.shape)


def rock_paper_scissors(
    T: int = 1, mu0=(1.0, 0.0, 0.0, 0.0), *, temperature: float = 0.0
) -> MeanFieldGame:
    """Generalized rock-paper-scissors (MFGLib ``Environment.rock_paper_scissors``).

    States: start, rock, paper, scissors; action ``a`` moves to state ``1 + a``.
    """
    return make_mean_field_game(
        initial=mu0,
        params={"kernel": jnp.asarray(_next_is_one_plus_action(4, 3))},
        reward_fn=_rps_reward,
        transition_fn=_constant_kernel,
        horizon=T + 1,
        state_shape=(4,),
        action_shape=(3,),
        temperature=temperature,
        name="rock_paper_scissors",
    )


def _si_reward(params, t, joint, leader):
    return jnp.asarray([[0.0, -0.5], [-1.0, -1.5]], joint.dtype)


def _si_kernel(params, t, joint, leader):
    infected = joint.sum(-1)[1]
    p = 0.9**2 * infected
    one = jnp.ones_like(p)
    zero = jnp.zeros_like(p)
    susceptible = jnp.stack([jnp.stack([1.0 - p, p]), jnp.stack([one, zero])])  # a = 0, 1
    recovered = jnp.broadcast_to(jnp.asarray([0.3, 0.7], joint.dtype), (2, 2))
    return jnp.stack([susceptible, recovered])


def susceptible_infected(T: int = 50, mu0=(0.4, 0.6), *, temperature: float = 0.0):
    """Susceptible-infected (MFGLib ``Environment.susceptible_infected``).

    Action 0 goes out (infection probability ``0.81 mu_I``), action 1 distances (cost 0.5);
    infected agents pay 1 and recover with probability 0.3.
    """
    return make_mean_field_game(
        initial=mu0,
        reward_fn=_si_reward,
        transition_fn=_si_kernel,
        horizon=T + 1,
        state_shape=(2,),
        action_shape=(2,),
        temperature=temperature,
        name="susceptible_infected",
    )


# ---------------------------------------------------------------- beach bar


def _beach_bar_kernel(n: int, p_still: float) -> np.ndarray:
    probs = [(1 - p_still) / 2, p_still, (1 - p_still) / 2]
    kernel = np.zeros((n, 3, n))
    for s in range(n):
        for a in range(3):
            for eps, pr in zip([-1, 0, 1], probs):
                kernel[s, a, min(max(s + a - 1 + eps, 0), n - 1)] += pr
    return kernel


def _beach_bar_reward(params, t, joint, leader):
    mu = joint.sum(-1)
    crowd = -jnp.log(mu + params["log_eps"])
    return params["distance"][:, None] + params["move_cost"][None, :] + crowd[:, None]


def beach_bar(
    T: int = 2,
    n: int = 4,
    bar_loc: int = 2,
    log_eps: float = 1e-20,
    p_still: float = 0.5,
    mu0="uniform",
    *,
    temperature: float = 0.0,
) -> MeanFieldGame:
    """Beach bar (MFGLib ``Environment.beach_bar``; Perrin et al. 2020).

    ``n`` positions, actions left/stay/right with noise; reward ``-dist(s, bar) - |a|/n -
    log(mu(s) + log_eps)`` (torus distance, clipped moves: see the module docstring).
    """
    if not 0 <= bar_loc <= n - 1:
        raise ValueError(f"`bar_loc` must be in [0, n - 1] = [0, {n - 1}]; got {bar_loc}.")
    if not 0 <= p_still <= 1:
        raise ValueError(f"`p_still` must be a probability; got {p_still}. Pass a value in [0, 1].")
    idx = np.arange(n)
    distance = -np.minimum(np.roll(idx, bar_loc), np.roll(idx[::-1], bar_loc + 1))
    params = {
        "kernel": jnp.asarray(_beach_bar_kernel(n, p_still)),
        "distance": jnp.asarray(distance, float),
        "move_cost": -jnp.asarray([1.0, 0.0, 1.0]) / n,
        "log_eps": jnp.asarray(log_eps),
    }
    return make_mean_field_game(
        initial=_initial(mu0, n),
        params=params,
        reward_fn=_beach_bar_reward,
        transition_fn=_constant_kernel,
        horizon=T + 1,
        action_shape=(3,),
        temperature=temperature,
        name="beach_bar",
    )


# ---------------------------------------------------------------- equilibrium price


def _price_kernel(s_inv: int, Q: int, H: int) -> np.ndarray:
    kernel = np.zeros((s_inv + 1, (Q + 1) * (H + 1), s_inv + 1))
    for s in range(s_inv + 1):
        for q in range(Q + 1):
            for h in range(H + 1):
                kernel[s, q * (H + 1) + h, min(s - min(q, s) + h, s_inv)] = 1.0
    return kernel


def _price_reward(params, t, joint, leader):
    c0, c1, c2, c3, c4 = (params["c"][i] for i in range(5))
    s, q, h = params["s"], params["q"], params["h"]  # [S, A] grids
    price = (params["d"] / (jnp.sum(joint * q) + params["e0"])) ** (1.0 / params["sigma"])
    return (price - c0) * q - c1 * q**2 - c2 * h - (c2 + c3) * jnp.maximum(q - s, 0.0) - c4 * s


def equilibrium_price(
    T: int = 4,
    s_inv: int = 3,
    Q: int = 2,
    H: int = 2,
    d: float = 1.0,
    e0: float = 1.0,
    sigma: float = 1.0,
    c=(1.0, 1.0, 1.0, 1.0, 1.0),
    mu0="uniform",
    *,
    temperature: float = 0.0,
) -> MeanFieldGame:
    """Equilibrium price (MFGLib ``Environment.equilibrium_price``; Guo et al. 2022).

    Firms hold inventory ``s in {0..s_inv}``, consume ``q in {0..Q}`` and replenish ``h in
    {0..H}`` (action index ``q (H + 1) + h``); the price ``(d / (E[q] + e0))^(1/sigma)``
    clears the market.
    """
    n_s, n_a = s_inv + 1, (Q + 1) * (H + 1)
    grid_s, grid_q, grid_h = np.meshgrid(
        np.arange(n_s), np.arange(Q + 1), np.arange(H + 1), indexing="ij"
    )
    params = {
        "kernel": jnp.asarray(_price_kernel(s_inv, Q, H)),
        "s": jnp.asarray(grid_s.reshape(n_s, n_a), float),
        "q": jnp.asarray(grid_q.reshape(n_s, n_a), float),
        "h": jnp.asarray(grid_h.reshape(n_s, n_a), float),
        "d": jnp.asarray(d, float),
        "e0": jnp.asarray(e0, float),
        "sigma": jnp.asarray(sigma, float),
        "c": jnp.asarray(c, float),
    }
    return make_mean_field_game(
        initial=_initial(mu0, n_s),
        params=params,
        reward_fn=_price_reward,
        transition_fn=_constant_kernel,
        horizon=T + 1,
        action_shape=(Q + 1, H + 1),
        temperature=temperature,
        name="equilibrium_price",
    )


# ---------------------------------------------------------------- linear-quadratic


def _lq_mean(params, joint):
    return jnp.sum(params["x"] * joint.sum(-1))


def _lq_reward(params, t, joint, leader):
    m_t = _lq_mean(params, joint)
    x = params["x"][:, None]
    a = params["a"][None, :]
    gap = m_t - x
    running = (-0.5 * a**2 + params["q"] * a * gap - 0.5 * params["kappa"] * gap**2) * params[
        "delta"
    ]
    terminal = jnp.broadcast_to(-0.5 * params["c_term"] * gap**2, running.shape)
    return jnp.where(t == params["T"], terminal, running)


def _lq_kernel(params, t, joint, leader):
    m_t = _lq_mean(params, joint)
    x = params["x"][:, None, None]
    a = params["a"][None, :, None]
    eps = params["eps"][None, None, :]
    delta, sigma, el = params["delta"], params["sigma"], params["el"]
    nxt = x + (params["k"] * (m_t - x) + a) * delta + sigma * eps * jnp.sqrt(delta)
    idx = jnp.clip(jnp.round(nxt), -el, el) + el  # [S, A, 7]
    n_s = params["x"].shape[0]
    onehot = jax.nn.one_hot(idx.astype(jnp.int32), n_s, dtype=joint.dtype)  # [S, A, 7, S]
    return jnp.einsum("saen,e->san", onehot, params["eps_pr"].astype(joint.dtype))


def linear_quadratic(
    T: int = 3,
    el: int = 5,
    m: int = 2,
    sigma: float = 3.0,
    delta: float = 0.1,
    k: float = 1.0,
    q: float = 0.01,
    kappa: float = 0.5,
    c_term: float = 1.0,
    mu0="uniform",
    *,
    temperature: float = 0.0,
) -> MeanFieldGame:
    """Linear-quadratic (MFGLib ``Environment.linear_quadratic``; Perrin et al. 2020).

    States ``x in {-el..el}``, actions ``a in {-m..m}``; mean reversion to the population
    mean with discretized Gaussian noise (quirks in the module docstring).
    """
    eps = np.arange(-3, 4) * sigma
    eps_pr = np.exp(-0.5 * eps**2) / math.sqrt(2 * math.pi)
    eps_pr /= eps_pr.sum()
    params = {
        "x": jnp.arange(-el, el + 1, dtype=float),
        "a": jnp.arange(-m, m + 1, dtype=float),
        "eps": jnp.asarray(eps, float),
        "eps_pr": jnp.asarray(eps_pr, float),
        "T": jnp.asarray(T),
        "el": jnp.asarray(el, float),
        "sigma": jnp.asarray(sigma, float),
        "delta": jnp.asarray(delta, float),
        "k": jnp.asarray(k, float),
        "q": jnp.asarray(q, float),
        "kappa": jnp.asarray(kappa, float),
        "c_term": jnp.asarray(c_term, float),
    }
    return make_mean_field_game(
        initial=_initial(mu0, 2 * el + 1),
        params=params,
        reward_fn=_lq_reward,
        transition_fn=_lq_kernel,
        horizon=T + 1,
        action_shape=(2 * m + 1,),
        temperature=temperature,
        name="linear_quadratic",
    )


# ---------------------------------------------------------------- crowd motion, evacuation


def _crowd_kernel(torus_l: int, torus_w: int, p_still: float) -> np.ndarray:
    x = (1 - p_still) / 4
    probs = [x, x, x, x, p_still]
    moves = [(1, 0), (-1, 0), (0, 1), (0, -1), (0, 0)]
    n = torus_l * torus_w
    kernel = np.zeros((n, 5, n))
    for s0 in range(torus_l):
        for s1 in range(torus_w):
            for i, (a0, a1) in enumerate(moves):
                for (dx, dy), pr in zip(moves, probs):
                    n0 = min(max(s0 + a0 + dx, 0), torus_l - 1)
                    n1 = min(max(s1 + a1 + dy, 0), torus_w - 1)
                    kernel[s0 * torus_w + s1, i, n0 * torus_w + n1] += pr
    return kernel


def _crowd_reward(params, t, joint, leader):
    mu = joint.sum(-1)
    bar = params["bar_path"][t]
    dist = jnp.abs(params["row"] - bar[0]) + jnp.abs(params["col"] - bar[1])
    attraction = 1.0 - dist / params["size"]
    r = params["c"] * attraction - jnp.log(mu + params["log_eps"])
    return jnp.broadcast_to(r[:, None], joint.shape)


def crowd_motion(
    bar_path,
    T: int = 3,
    torus_l: int = 20,
    torus_w: int = 20,
    c: float = 10.0,
    log_eps: float = 1e-10,
    p_still: float = 0.5,
    mu0="uniform",
    *,
    temperature: float = 0.0,
) -> MeanFieldGame:
    """Crowd motion (MFGLib ``Environment.crowd_motion``): a 2-D beach bar with a moving bar.

    Args:
      bar_path: ``[T + 1, 2]`` integer bar location at each step (MFGLib draws it at random
        every ``loc_change_freq`` steps; pass the same path to compare).
      T, torus_l, torus_w, c, log_eps, p_still, mu0: as in MFGLib.
    """
    bar_path = jnp.asarray(bar_path)
    if bar_path.shape != (T + 1, 2):
        raise ValueError(
            f"`bar_path` must have shape (T + 1, 2) = ({T + 1}, 2); got {tuple(bar_path.shape)}. "
            "Pass one (row, column) bar location per step."
        )
    rows, cols = np.meshgrid(np.arange(torus_l), np.arange(torus_w), indexing="ij")
    params = {
        "kernel": jnp.asarray(_crowd_kernel(torus_l, torus_w, p_still)),
        "bar_path": bar_path.astype(float),
        "row": jnp.asarray(rows.reshape(-1), float),
        "col": jnp.asarray(cols.reshape(-1), float),
        "size": jnp.asarray(torus_l + torus_w, float),
        "c": jnp.asarray(c, float),
        "log_eps": jnp.asarray(log_eps, float),
    }
    return make_mean_field_game(
        initial=_initial(mu0, torus_l * torus_w),
        params=params,
        reward_fn=_crowd_reward,
        transition_fn=_constant_kernel,
        horizon=T + 1,
        state_shape=(torus_l, torus_w),
        action_shape=(5,),
        temperature=temperature,
        name="crowd_motion",
    )


def _evacuation_kernel(n_floor: int, floor_l: int, floor_w: int) -> np.ndarray:
    shape = (n_floor, floor_l, floor_w)
    n = n_floor * floor_l * floor_w
    kernel = np.zeros((n, 6, n))
    for f in range(n_floor):
        for li in range(floor_l):
            for wi in range(floor_w):
                s = np.ravel_multi_index((f, li, wi), shape)
                targets = [
                    (f, min(li + 1, floor_l - 1), wi),
                    (f, max(0, li - 1), wi),
                    (f, li, max(0, wi - 1)),
                    (f, li, min(wi + 1, floor_w - 1)),
                    (max(0, f - 1) if li == 0 and wi == 0 else f, li, wi),
                    (
                        min(f + 1, n_floor - 1) if li == floor_l - 1 and wi == floor_w - 1 else f,
                        li,
                        wi,
                    ),
                ]
                for a, target in enumerate(targets):
                    kernel[s, a, np.ravel_multi_index(target, shape)] = 1.0
    return kernel


def _evacuation_reward(params, t, joint, leader):
    mu = jnp.maximum(joint.sum(-1), params["log_eps"])
    r = -params["eta"] * jnp.log(mu) + params["exit_reward"]
    return jnp.broadcast_to(r[:, None], joint.shape)


def building_evacuation(
    T: int = 3,
    n_floor: int = 5,
    floor_l: int = 10,
    floor_w: int = 10,
    log_eps: float = 1e-20,
    eta: float = 1.0,
    evac_r: float = 10.0,
    mu0="uniform",
    *,
    temperature: float = 0.0,
) -> MeanFieldGame:
    """Building evacuation (MFGLib ``Environment.building_evacuation``; Perolat et al. 2021).

    States (floor, length, width); actions right/left/up/down/downstairs/upstairs; the
    ground floor pays ``evac_r`` and crowding costs ``-eta log mu``.
    """
    shape = (n_floor, floor_l, floor_w)
    exit_reward = np.zeros(shape)
    exit_reward[0] = evac_r
    params = {
        "kernel": jnp.asarray(_evacuation_kernel(*shape)),
        "exit_reward": jnp.asarray(exit_reward.reshape(-1)),
        "eta": jnp.asarray(eta, float),
        "log_eps": jnp.asarray(log_eps, float),
    }
    return make_mean_field_game(
        initial=_initial(mu0, int(np.prod(shape))),
        params=params,
        reward_fn=_evacuation_reward,
        transition_fn=_constant_kernel,
        horizon=T + 1,
        state_shape=shape,
        action_shape=(6,),
        temperature=temperature,
        name="building_evacuation",
    )


# ---------------------------------------------------------------- treasure hunting, random


def _treasure_terms(params, joint):
    n = joint.shape[0]
    eye = jnp.eye(n, dtype=joint.dtype)
    # ||L - e_s e_s^T||^2 for every s, without building n matrices.
    return jnp.sum(joint**2) - 2.0 * jnp.diagonal(joint) + 1.0, eye


def _treasure_reward(params, t, joint, leader):
    diff, eye = _treasure_terms(params, joint)
    r = eye * (params["r"] * (1.0 - diff / 2.0))[:, None]
    return jnp.where(t == 0, jnp.zeros_like(r), r)


def _treasure_kernel(params, t, joint, leader):
    n = joint.shape[0]
    diff, eye = _treasure_terms(params, joint)
    c = params["c"][jnp.maximum(t - 1, 0)]
    denom = 1.0 + n * c * diff  # [S]
    spread = (c * diff / denom)[:, None, None] * jnp.ones((n, n, n), joint.dtype)
    later = spread + eye[None, :, :] / denom[:, None, None]  # [s, a, s'] += [a == s'] / denom
    first = jnp.broadcast_to(eye[None], (n, n, n))
    return jnp.where(t == 0, first, later)


def conservative_treasure_hunting(
    T: int = 5,
    n: int = 3,
    r=(1.0, 1.0, 1.0),
    c=(1.0, 1.0, 1.0, 1.0, 1.0),
    mu0="uniform",
    *,
    temperature: float = 0.0,
) -> MeanFieldGame:
    """Conservative treasure hunting (MFGLib ``Environment.conservative_treasure_hunting``)."""
    if len(r) != n:
        raise ValueError(f"`r` must have n = {n} entries; got {len(r)}. Pass one reward per site.")
    if len(c) != T:
        raise ValueError(f"`c` must have T = {T} entries; got {len(c)}. Pass one cost per step.")
    return make_mean_field_game(
        initial=_initial(mu0, n),
        params={"r": jnp.asarray(r, float), "c": jnp.asarray(c, float)},
        reward_fn=_treasure_reward,
        transition_fn=_treasure_kernel,
        horizon=T + 1,
        action_shape=(n,),
        temperature=temperature,
        name="conservative_treasure_hunting",
    )


def _random_linear_reward(params, t, joint, leader):
    return params["r1"] @ joint + params["r2"]


def _random_linear_kernel(params, t, joint, leader):
    logits = params["p1"] @ joint + params["p2"]  # [s', s, a]
    return jnp.transpose(jax.nn.softmax(logits, axis=0), (1, 2, 0))


def random_linear(
    key=None,
    T: int = 3,
    n: int = 5,
    m: float = 10.0,
    mu0="uniform",
    *,
    tensors=None,
    temperature: float = 0.0,
) -> MeanFieldGame:
    """Random linear (MFGLib ``Environment.random_linear``): affine rewards and logits in L.

    Args:
      key: PRNG key for the four tensors ``p1, p2 [n, n, n]``, ``r1, r2 [n, n]`` uniform in
        ``[-m, m]`` (ignored when ``tensors`` is given).
      tensors: optional dict ``{"p1", "p2", "r1", "r2"}`` (e.g. MFGLib's, to compare).
    """
    if tensors is None:
        if key is None:
            raise ValueError(
                "`random_linear` needs a `key` or `tensors`; got neither. Fix: pass "
                "key=jax.random.key(seed) or the four tensors."
            )
        k1, k2, k3, k4 = jax.random.split(as_key(key), 4)
        draw = lambda k, shape: jax.random.uniform(k, shape, minval=-m, maxval=m)  # noqa: E731
        tensors = {
            "p1": draw(k1, (n, n, n)),
            "p2": draw(k2, (n, n, n)),
            "r1": draw(k3, (n, n)),
            "r2": draw(k4, (n, n)),
        }
    tensors = {name: jnp.asarray(tensors[name], float) for name in ("p1", "p2", "r1", "r2")}
    return make_mean_field_game(
        initial=_initial(mu0, n),
        params=tensors,
        reward_fn=_random_linear_reward,
        transition_fn=_random_linear_kernel,
        horizon=T + 1,
        action_shape=(n,),
        temperature=temperature,
        name="random_linear",
    )
