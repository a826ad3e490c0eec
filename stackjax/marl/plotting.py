"""Figures of `stackjax.marl` runs (matplotlib is imported inside the functions)."""

from __future__ import annotations

import numpy as np

__all__ = ["plot_sample_efficiency"]


def plot_sample_efficiency(curves: dict, targets: dict, path=None, *, title=None):
    """Leader return against leader samples, one panel per game, one line per design.

    Args:
      curves: ``{design: {game: (samples [U], leader_return [seeds, U])}}``.
      targets: ``{game: exact Stackelberg leader return}`` (dashed line).
      path: where to save a PNG (``None``: do not save).
      title: figure title.

    Returns:
      The matplotlib figure. Lines are medians over seeds, bands the min-max range.
    """
    import matplotlib.pyplot as plt

    games = list(targets)
    cols = min(4, len(games))
    rows = -(-len(games) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.8 * rows), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, game in zip(axes.ravel(), games, strict=False):
        for k, (design, per_game) in enumerate(curves.items()):
            if game not in per_game:
                continue
            samples, returns = per_game[game]
            returns = np.atleast_2d(np.asarray(returns))
            color = colors[k % len(colors)]
            ax.plot(samples, np.median(returns, axis=0), color=color, label=design)
            ax.fill_between(
                samples, returns.min(axis=0), returns.max(axis=0), color=color, alpha=0.2
            )
        ax.axhline(targets[game], color="k", linestyle="--", linewidth=1, label="exact")
        ax.set_xscale("log")
        ax.set_title(game.replace("_", " "), fontsize=10)
        ax.set_xlabel("leader samples")
        ax.set_ylabel("leader return")
    for ax in axes.ravel()[len(games) :]:
        ax.axis("off")
    axes[0, 0].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig
