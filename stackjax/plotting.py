"""Plots (matplotlib is imported lazily, inside the functions; install the ``plot`` extra)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["plot_value_and_policy"]


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("Plotting needs matplotlib: pip install 'stackjax[plot]'") from err
    return plt


def plot_value_and_policy(solution, *, reference=None, num_points: int = 101, span: float = 2.0,
                          title: str | None = None):  # fmt: skip
    """Value slices per regime and policy means over time.

    Top row: ``V_{k,i}(0, x0 + s e_1)`` for ``s in [-span, span]``, one panel per player, a line
    per regime (dashed: ``reference`` if given). Bottom row: the players' first mean components
    ``mu_{k,i}(t, x0)`` over ``t in [0, T]`` per regime, with ``± 1 std`` bands when the
    policies explore.

    Args:
      solution: object with ``.value(t, x) -> [2, m]``, ``.policy(t, x)`` and ``.game``.
      reference: optional second solution drawn dashed (e.g. the Riccati reference).
      num_points: points per curve.
      span: half-width of the state slice.
      title: figure title.

    Returns:
      The matplotlib ``Figure``.
    """
    plt = _pyplot()
    game = solution.game if hasattr(solution, "game") else reference.game
    m, d = game.num_regimes, game.state_dim
    x0 = game.initial_state
    s = jnp.linspace(-span, span, num_points, dtype=x0.dtype)
    xs = x0[None, :] + s[:, None] * jnp.eye(d, dtype=x0.dtype)[0][None, :]
    zero = jnp.zeros((), x0.dtype)
    ts = jnp.linspace(0.0, 1.0, num_points, dtype=x0.dtype) * game.horizon

    def curves(sol):
        values = np.asarray(jax.vmap(lambda x: sol.value(zero, x))(xs))  # [N, 2, m]
        pol = jax.vmap(lambda t: sol.policy(t, x0))(ts)
        return values, jax.tree.map(np.asarray, pol)

    values, pol = curves(solution)
    ref = curves(reference) if reference is not None else None
    fig, axes = plt.subplots(2, 2, figsize=(11, 7), constrained_layout=True)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, player in enumerate(("leader", "follower")):
        ax = axes[0, k]
        for i in range(m):
            ax.plot(
                np.asarray(s), values[:, k, i], color=colors[i % len(colors)], label=f"regime {i}"
            )
            if ref is not None:
                ax.plot(np.asarray(s), ref[0][:, k, i], "--", color=colors[i % len(colors)], lw=1)
        ax.set_xlabel("x_1 - x0_1  (other coordinates at x0, t = 0)")
        ax.set_ylabel(f"V_{k + 1},i(0, x)")
        ax.set_title(f"{player} value" + (" (dashed: reference)" if ref is not None else ""))
        ax.legend(fontsize=8)
        ax = axes[1, k]
        mean = pol.mean_leader if k == 0 else pol.mean_follower  # [N, m, k]
        cov = pol.cov_leader if k == 0 else pol.cov_follower  # [N, m, k, k]
        for i in range(m):
            c = colors[i % len(colors)]
            ax.plot(np.asarray(ts), mean[:, i, 0], color=c, label=f"regime {i}")
            std = np.sqrt(np.maximum(cov[:, i, 0, 0], 0.0))
            if np.any(std > 0):
                ax.fill_between(
                    np.asarray(ts), mean[:, i, 0] - std, mean[:, i, 0] + std, color=c, alpha=0.15
                )
            if ref is not None:
                ref_mean = ref[1].mean_leader if k == 0 else ref[1].mean_follower
                ax.plot(np.asarray(ts), ref_mean[:, i, 0], "--", color=c, lw=1)
        ax.set_xlabel("t")
        ax.set_ylabel(f"mu_{k + 1},i(t, x0)[0]")
        ax.set_title(f"{player} policy mean at x0 (band: ± 1 std)")
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return fig
