"""Figures for Stackelberg mean-field games (matplotlib imported inside the functions)."""

from __future__ import annotations

import numpy as np

__all__ = ["plot_alignment", "plot_learning_curves", "plot_revenue_curves"]


def _axes(ax):
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(5.5, 3.8))
    return ax


def plot_revenue_curves(thetas, curves, optima=None, ax=None):
    """Leader revenue against the toll, one curve per follower temperature.

    Args:
      thetas: ``[N]`` tolls.
      curves: ``{label: [N] revenue}``.
      optima: optional ``{label: (theta*, revenue*)}`` marked with dots.
      ax: matplotlib axes (a new figure if ``None``).
    """
    ax = _axes(ax)
    for label, values in curves.items():
        (line,) = ax.plot(thetas, values, label=label)
        if optima and label in optima:
            ax.plot(*optima[label], "o", color=line.get_color())
    ax.set_xlabel("toll θ")
    ax.set_ylabel("leader revenue θ μ_R")
    ax.legend(fontsize=8)
    ax.set_title("Toll game: revenue at the followers' equilibrium")
    return ax


def plot_learning_curves(samples, gaps, ax=None):
    """Relative gap to the exact optimum against samples (median and range over seeds).

    Args:
      samples: ``[U]`` cumulative samples.
      gaps: ``{method: [seeds, U] relative gap}``.
    """
    ax = _axes(ax)
    for label, gap in gaps.items():
        gap = np.abs(np.asarray(gap))
        median = np.median(gap, axis=0)
        (line,) = ax.semilogy(samples, np.maximum(median, 1e-12), label=label)
        ax.fill_between(
            samples,
            np.maximum(gap.min(0), 1e-12),
            np.maximum(gap.max(0), 1e-12),
            color=line.get_color(),
            alpha=0.2,
        )
    ax.set_xlabel("follower samples")
    ax.set_ylabel("|Φ* − Φ(ω_k)| / Φ*")
    ax.legend(fontsize=8)
    ax.set_title("Leader objective against the exact optimum")
    return ax


def plot_alignment(samples, ratios, ax=None):
    """Gradient-alignment ratio ``||∇Φ − ∂_ω J|| / ||∇Φ||`` along runs (median over seeds)."""
    ax = _axes(ax)
    for label, ratio in ratios.items():
        ax.semilogy(samples, np.median(np.asarray(ratio), axis=0), label=label)
    ax.axhline(1.0, color="gray", lw=0.8, ls="--")
    ax.set_xlabel("follower samples")
    ax.set_ylabel("alignment ratio")
    ax.legend(fontsize=8)
    ax.set_title("Gradient alignment along training")
    return ax
