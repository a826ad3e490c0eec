"""Plots (matplotlib is imported lazily, inside the functions; install the ``plot`` extra)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["plot_history", "plot_value_and_policy"]


def _pyplot():
    try:
        import matplotlib.pyplot as plt  # (the default backend; Agg without a display)
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("Plotting needs matplotlib: pip install 'stackjax[plot]'") from err
    return plt


def plot_value_and_policy(solution, *, reference=None, num_points: int = 101, span: float = 2.0,
                          title: str | None = None):  # fmt: skip
    """Value slices per regime and policy means over time, with errors against a reference.

    Row 1: ``V_{k,i}(0, x0 + s e_1)`` for ``s in [-span, span]``, one panel per player, a line
    per regime. Row 2: the players' first mean components ``mu_{k,i}(t, x0)`` over ``t in
    [0, T]`` per regime, with ``± 1 std`` bands when the policies explore. With ``reference``
    the reference is drawn on top (black dots, its own legend entry) and row 3 shows the
    pointwise absolute errors of rows 1 and 2 on a log scale.

    Args:
      solution: object with ``.value(t, x) -> [2, m]``, ``.policy(t, x)`` and ``.game``.
      reference: optional exact solution (e.g. `riccati_reference`).
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
        pol = jax.tree.map(np.asarray, jax.vmap(lambda t: sol.policy(t, x0))(ts))
        means = np.stack([pol.mean_leader[..., 0], pol.mean_follower[..., 0]], 1)  # [N, 2, m]
        stds = np.sqrt(np.maximum(np.stack(
            [pol.cov_leader[..., 0, 0], pol.cov_follower[..., 0, 0]], 1), 0.0))  # fmt: skip
        return values, means, stds

    values, means, stds = curves(solution)
    ref = curves(reference) if reference is not None else None
    rows = 3 if ref is not None else 2
    fig, axes = plt.subplots(rows, 2, figsize=(11, 3.4 * rows), constrained_layout=True)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    s_np, t_np = np.asarray(s), np.asarray(ts)
    for k, player in enumerate(("leader", "follower")):
        for row, (x, y, band, xlabel, ylabel, what) in enumerate([
            (s_np, values, None, "x_1 - x0_1  (t = 0, other coordinates at x0)",
             f"V_{k + 1},i(0, x)", "value"),
            (t_np, means, stds, "t", f"mu_{k + 1},i(t, x0)[0]", "policy mean at x0"),
        ]):  # fmt: skip
            ax = axes[row, k]
            for i in range(m):
                c = colors[i % len(colors)]
                ax.plot(x, y[:, k, i], color=c, lw=2, label=f"regime {i}")
                if band is not None and np.any(band[:, k, i] > 0):
                    ax.fill_between(x, y[:, k, i] - band[:, k, i], y[:, k, i] + band[:, k, i],
                                    color=c, alpha=0.15, lw=0)  # fmt: skip
                if ref is not None:
                    r = ref[row][:, k, i]
                    ax.plot(x[::4], r[::4], "o", color="black", ms=2.5,
                            label="reference" if i == 0 else None)  # fmt: skip
                    # Floor at the candidate's resolution: exact float ties are not "0 error".
                    floor = np.finfo(y.dtype).eps * max(np.max(np.abs(r)), 1.0)
                    err = np.maximum(np.abs(y[:, k, i] - r), floor)
                    axes[2, row].semilogy(x, err, color=c, ls=("-", "--")[k],
                                          label=f"{player}, regime {i}")  # fmt: skip
            ax.set(xlabel=xlabel, ylabel=ylabel, title=f"{player} {what}")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
    if ref is not None:
        for col, (xlabel, what) in enumerate([
            ("x_1 - x0_1  (t = 0)", "value"), ("t  (x = x0)", "policy mean (first component)"),
        ]):  # fmt: skip
            ax = axes[2, col]
            ax.set(
                xlabel=xlabel, ylabel="|candidate - reference|", title=f"pointwise error: {what}"
            )
            ax.grid(alpha=0.3, which="both")
            ax.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    return fig


def plot_history(history, *, final=None, title: str | None = None):
    """Training history: Adam loss, Gauss-Newton loss, and errors against a reference.

    Panels appear only for what ran: the Adam loss (if there were Adam steps), the
    Gauss-Newton loss per iteration (integer ticks; the kept iterate marked when the history
    says which), and the relative errors at the reference checks (solid: value, dashed:
    policy mean; ``final``: the `evaluate` dict after training, drawn as stars at the returned
    iterate).

    Args:
      history: ``Solution.history``.
      final: optional `evaluate` result.
      title: figure title.

    Returns:
      The matplotlib ``Figure``.
    """
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    errs = np.asarray(history.get("value_error", np.zeros((0,))))
    refine = np.asarray(history.get("refine_loss", np.zeros((0,))))
    adam_steps = int(np.asarray(history["step"]).size)
    kept = history.get("refine_best")  # the returned Gauss-Newton iterate (0-based), -1 if none
    kept = int(np.asarray(kept)) if kept is not None and np.size(kept) else -1
    panels = (["adam"] if adam_steps else []) + (["refine"] if refine.size else [])
    panels += ["errors"] if errs.size else []
    if not panels:
        panels = ["adam"]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.4 * len(panels), 4.2), squeeze=False,
                             constrained_layout=True)  # fmt: skip
    axes = dict(zip(panels, axes[0], strict=True))
    if adam_steps:
        ax = axes["adam"]
        ax.semilogy(np.asarray(history["step"]) + 1, np.asarray(history["loss"]), lw=0.8)
        ax.set(xlabel="Adam step", ylabel="loss (mean squared residual)", title="Adam loss")
        ax.grid(True, which="both", alpha=0.3)
    if "refine" in axes:
        ax = axes["refine"]
        its = np.arange(1, refine.size + 1)
        ax.semilogy(its, refine, "o-", ms=4, label="on the iteration's batch")
        scores = np.asarray(history.get("refine_evaluation_loss", np.zeros((0,))))
        if scores.size == refine.size:
            ax.semilogy(its, scores, "s--", ms=3, mfc="none", label="on the evaluation batch")
        if kept >= 0:
            ax.semilogy([kept + 1], [scores[kept] if scores.size else refine[kept]], "*", ms=14,
                        color="C3", label="returned iterate")  # fmt: skip
        ax.legend(fontsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set(xlabel="Gauss-Newton iteration", ylabel="loss after the iteration",
               title="Gauss-Newton loss")  # fmt: skip
        ax.grid(True, which="both", alpha=0.3)
    if "errors" in axes:
        ax = axes["errors"]
        es = np.asarray(history["error_step"])
        mean = np.asarray(history["mean_error"])
        markers = ("o", "s", "^", "v", "D", "P")
        # The returned solution's errors at the kept Gauss-Newton iterate (checks after the
        # Adam steps are numbered Adam steps + iteration), else after the last check.
        star_x = es[-1]
        if kept >= 0 and refine.size:
            adam_done = int(np.asarray(history["step"])[-1]) + 1 if adam_steps else 0
            star_x = adam_done + kept + 1
        for k, player in enumerate(("leader", "follower")):
            for i in range(errs.shape[2]):
                c, mk = f"C{2 * i + k}", markers[(2 * i + k) % len(markers)]
                ax.semilogy(es, errs[:, k, i], "-", marker=mk, ms=4, color=c,
                            label=f"{player}, regime {i}")  # fmt: skip
                ax.semilogy(es, mean[:, k, i], "--", marker=mk, ms=3, color=c, mfc="none")
                if final is not None:
                    ax.semilogy([star_x], [final["value"][k, i]], "*", ms=11, color=c)
        what = ("Adam steps + " if adam_steps else "") + "Gauss-Newton iterations"
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set(xlabel=what, ylabel="relative L2 error",
               title="errors vs reference (solid: value, dashed: mean)")  # fmt: skip
        ax.title.set_fontsize(10)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, ncol=1, loc="upper right")
    if title:
        fig.suptitle(title)
    return fig
