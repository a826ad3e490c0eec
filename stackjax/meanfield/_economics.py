r"""Three Stackelberg economics environments built on MFGLib's games.

The AC-SMFG paper (Zeng et al., 2025) evaluates Stackelberg extensions of three MFGLib
environments ("market entrance", "shop positioning", "equilibrium pricing") without
publishing their definitions. These are this library's definitions, chosen to keep the
MFGLib follower game intact and add one leader whose parameters enter the followers'
rewards and whose reward depends on the population flow:

- `market_entrance`: MFGLib's left-right game read as a market with an incumbent (left)
  and an entrant (right) position; a regulator subsidizes the entrant position by
  :math:`\omega \in [0, 1]` and is paid a social value of competition :math:`\kappa
  \mu_R (1 - \mu_R)` minus its spending :math:`\omega \mu_R`.
- `shop_positioning`: MFGLib's beach bar where a shop owner chooses *where* the bar is:
  logits :math:`\omega \in \mathbb{R}^n` give a distribution :math:`w = \mathrm{softmax}(\omega)`
  over positions; followers' distance term becomes :math:`-\sum_b w_b d(s, b)`; the owner
  earns the footfall :math:`\sum_t \sum_s \mu_t(s) w_s` minus a small entropy-free
  regularizer :math:`0.01 \|\omega\|^2`.
- `equilibrium_pricing`: MFGLib's equilibrium price where a government levies a per-unit
  tax :math:`\omega \in [0, 1]` on consumption ``q`` (firms' reward minus :math:`\omega q`)
  and earns the tax revenue :math:`\omega \mathbb{E}[q]` per step.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ._environments import (
    _left_right_reward,
    _price_reward,
    beach_bar,
    equilibrium_price,
    left_right,
)
from ._game import MeanFieldGame, make_mean_field_game

__all__ = ["equilibrium_pricing", "market_entrance", "shop_positioning"]


def _entrance_reward(params, t, joint, leader):
    base = _left_right_reward(params, t, joint, leader)
    subsidy = jnp.zeros((joint.shape[0],), joint.dtype).at[2].set(leader[0])
    return base + subsidy[:, None]


def _entrance_leader(params, t, joint, leader):
    mu_right = jnp.sum(joint[2])
    return params["kappa"] * mu_right * (1.0 - mu_right) - leader[0] * mu_right


def market_entrance(temperature: float = 0.2, *, kappa: float = 8.0) -> MeanFieldGame:
    """Left-right as market entry with a subsidizing regulator (module docstring).

    Args:
      temperature: followers' entropy temperature.
      kappa: the regulator's value of competition.
    """
    base = left_right(temperature=temperature)
    params = dict(base.params, kappa=jnp.asarray(kappa, float))
    return make_mean_field_game(
        initial=base.initial,
        params=params,
        reward_fn=_entrance_reward,
        transition_fn=base.transition_fn,
        leader_reward_fn=_entrance_leader,
        horizon=base.horizon,
        state_shape=base.state_shape,
        action_shape=base.action_shape,
        temperature=temperature,
        leader_init=[0.0],
        leader_lower=[0.0],
        leader_upper=[1.0],
        name="market_entrance",
    )


def _torus_distances(n: int) -> jnp.ndarray:
    idx = jnp.arange(n)
    gap = jnp.abs(idx[:, None] - idx[None, :])
    return jnp.minimum(gap, n - gap).astype(float)  # [s, b], the beach bar's torus distance


def _shop_reward(params, t, joint, leader):
    weights = jax.nn.softmax(leader)
    distance = -params["distances"] @ weights  # [S]
    mu = joint.sum(-1)
    crowd = -jnp.log(mu + params["log_eps"])
    return distance[:, None] + params["move_cost"][None, :] + crowd[:, None]


def _shop_leader(params, t, joint, leader):
    footfall = jnp.sum(joint.sum(-1) * jax.nn.softmax(leader))
    return footfall - 0.01 * jnp.sum(leader**2) / joint.shape[0]


def shop_positioning(
    temperature: float = 0.3, *, T: int = 2, n: int = 5, p_still: float = 0.5
) -> MeanFieldGame:
    """Beach bar whose location is chosen by the shop owner (module docstring).

    The leader's parameters are ``n`` logits in ``[-3, 3]``.
    """
    base = beach_bar(T=T, n=n, bar_loc=0, p_still=p_still, temperature=temperature)
    params = dict(base.params, distances=_torus_distances(n))
    return make_mean_field_game(
        initial=base.initial,
        params=params,
        reward_fn=_shop_reward,
        transition_fn=base.transition_fn,
        leader_reward_fn=_shop_leader,
        horizon=base.horizon,
        action_shape=base.action_shape,
        temperature=temperature,
        leader_init=jnp.zeros(n),
        leader_lower=-3.0,
        leader_upper=3.0,
        name="shop_positioning",
    )


def _pricing_reward(params, t, joint, leader):
    return _price_reward(params, t, joint, leader) - leader[0] * params["q"]


def _pricing_leader(params, t, joint, leader):
    return leader[0] * jnp.sum(joint * params["q"])


def equilibrium_pricing(temperature: float = 0.3, *, T: int = 2, **kwargs) -> MeanFieldGame:
    """MFGLib's equilibrium price with a per-unit consumption tax (module docstring).

    Extra keyword arguments go to `equilibrium_price` (``s_inv``, ``Q``, ``H``, ...).
    """
    base = equilibrium_price(T=T, temperature=temperature, **kwargs)
    return make_mean_field_game(
        initial=base.initial,
        params=base.params,
        reward_fn=_pricing_reward,
        transition_fn=base.transition_fn,
        leader_reward_fn=_pricing_leader,
        horizon=base.horizon,
        action_shape=base.action_shape,
        temperature=temperature,
        leader_init=[0.1],
        leader_lower=[0.0],
        leader_upper=[1.0],
        name="equilibrium_pricing",
    )
