"""Command line: ``stackjax riccati --example NAME`` (exact LQ reference) and
``stackjax solve --example NAME`` (neural solver vs the reference); also ``python -m stackjax``."""

from __future__ import annotations

import argparse
import os
import sys
import time


def _table(headers, rows) -> str:
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[j]) for r in cells) for j in range(len(headers))]
    line = lambda r: "  ".join(c.rjust(w) for c, w in zip(r, widths))  # noqa: E731
    return "\n".join(
        [line(cells[0]), line(["-" * w for w in widths])] + [line(r) for r in cells[1:]]
    )


def _fmt(a) -> str:
    import numpy as np

    a = np.atleast_1d(np.asarray(a, dtype=float))
    return "[" + ", ".join(f"{v:+.4f}" for v in a.ravel()) + "]"


def _riccati(args) -> int:
    import jax

    if not args.float32:
        jax.config.update("jax_enable_x64", True)
    import numpy as np

    from . import examples, monte_carlo_cost, riccati_reference

    game = examples.make_example(args.example)
    print(
        f"stackjax riccati: example '{args.example}'  d={game.state_dim} m={game.num_regimes} "
        f"k1={game.leader_dim} k2={game.follower_dim} n={game.noise_dim}  "
        f"T={float(game.T):g}  lambda={np.asarray(game.lam).tolist()}  "
        f"zero_sum={game.zero_sum}  concept={args.concept}  device={jax.devices()[0].platform}"
    )
    start = time.perf_counter()
    sol = riccati_reference(game, concept=args.concept, num_times=args.num_times)
    jax.block_until_ready(sol.P)
    print(f"Riccati system solved backward on [0, T] in {time.perf_counter() - start:.2f} s "
          f"(incl. compilation; {int(sol.num_steps)} Dopri8 steps)\n")  # fmt: skip

    x0 = game.x0
    values = np.asarray(sol.value(0.0, x0))
    print("Equilibrium values V_{k,i}(0, x0)  (docs/math.md §7):")
    rows = [
        [f"regime {i}", f"{values[0, i]:.6f}", f"{values[1, i]:.6f}"]
        for i in range(game.num_regimes)
    ]
    print(_table(["", "leader V_1", "follower V_2"], rows), "\n")

    g = sol.gains(0.0)
    print(
        "Policy at t = 0: mu_k = -(L_k x + l_k), "
        "follower reaction mu_2 = -(K x + kappa0) + Lambda mu_1:"
    )
    rows = []
    for i in range(game.num_regimes):
        rows.append([f"regime {i}", _fmt(g.L1[i]), _fmt(g.l1[i]), _fmt(g.L2[i]), _fmt(g.l2[i]),
                     _fmt(g.Lambda[i]), _fmt(np.diagonal(g.cov_leader[i])),
                     _fmt(np.diagonal(g.cov_follower[i]))])  # fmt: skip
    print(_table(["", "L1", "l1", "L2", "l2", "Lambda", "diag Sigma1", "diag Sigma2"], rows), "\n")

    print(f"Monte Carlo check of equilibrium play ({args.paths} paths, {args.steps} Euler steps, "
          f"sampled actions, exact regime switching; docs/math.md §9.5):")  # fmt: skip
    run = jax.jit(
        lambda key, i0: monte_carlo_cost(
            game, sol.policy, key, regime0=i0, num_paths=args.paths, num_steps=args.steps
        )
    )
    rows = []
    start = time.perf_counter()
    for i in range(game.num_regimes):
        mean, se = (np.asarray(a) for a in run(jax.random.key(args.seed + i), i))
        for k, player in enumerate(("leader", "follower")):
            z = (mean[k] - values[k, i]) / se[k]
            rows.append([f"regime {i}", player, f"{values[k, i]:.5f}", f"{mean[k]:.5f}",
                         f"{se[k]:.5f}", f"{z:+.2f}", "ok" if abs(z) < 4 else "CHECK"])  # fmt: skip
    print(_table(["start", "player", "V(0,x0)", "MC mean", "std err", "z", ""], rows))
    print(f"(Monte Carlo took {time.perf_counter() - start:.1f} s; |z| < 4 expected)\n")

    from .plotting import plot_value_and_policy

    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, f"riccati_{args.example}.png")
    fig = plot_value_and_policy(sol, title=f"Riccati reference: {args.example} ({args.concept})")
    fig.savefig(path, dpi=110)
    print(f"Plot written to {path}")
    return 0


def _plot_history(history, final=None, title=None):
    """Loss curves (Adam steps; Gauss-Newton iterations) and reference errors, log scale.

    ``final``: optional `evaluate` dict after refinement, drawn as stars at the last step.
    """
    import numpy as np

    from .plotting import _pyplot

    plt = _pyplot()
    errs = np.asarray(history.get("value_error", np.zeros((0,))))
    refine = np.asarray(history.get("refine_loss", np.zeros((0,))))
    adam = np.asarray(history["step"]).size > 0  # no Adam steps: Gauss-Newton only
    panels = (["adam"] if adam else []) + (["refine"] if refine.size else [])
    panels += ["errors"] if errs.size else []
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4), squeeze=False)
    axes = dict(zip(panels, axes[0]))
    if adam:
        ax = axes["adam"]
        ax.semilogy(np.asarray(history["step"]), np.asarray(history["loss"]), lw=0.8)
        ax.set(xlabel="Adam step", ylabel="loss", title="training loss (Adam)")
        ax.grid(True, which="both", alpha=0.3)
    if "refine" in axes:
        ax = axes["refine"]
        ax.semilogy(np.arange(1, refine.size + 1), refine, "o-", ms=4)
        ax.set(xlabel="iteration", ylabel="loss", title="Gauss-Newton refinement loss")
        ax.grid(True, which="both", alpha=0.3)
    if "errors" in axes:
        ax = axes["errors"]
        es = np.asarray(history["error_step"])
        mean = np.asarray(history["mean_error"])
        for k, player in enumerate(("leader", "follower")):
            for i in range(errs.shape[2]):
                (line,) = ax.semilogy(es, errs[:, k, i], "o-", ms=3, label=f"V {player} {i}")
                ax.semilogy(es, mean[:, k, i], "x--", ms=3, color=line.get_color(),
                            label=f"mean {player} {i}")  # fmt: skip
                if final is not None:
                    fm = final["mean_leader" if k == 0 else "mean_follower"][i]
                    ax.semilogy([es[-1]], [final["value"][k, i]], "*", ms=10,
                                color=line.get_color())  # fmt: skip
                    ax.semilogy([es[-1]], [fm], "P", ms=7, color=line.get_color())
        extra = " (stars/plus: after refinement)" if final is not None else ""
        ax.set(xlabel="Adam steps + Gauss-Newton iterations", ylabel="relative L2 error",
               title="errors vs Riccati (solid V, dashed policy mean)" + extra)  # fmt: skip
        ax.title.set_fontsize(9)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, ncol=2)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def _solve(args) -> int:
    import jax
    import numpy as np

    from . import evaluate, examples, monte_carlo_cost, riccati_reference
    from ._solver import SolverConfig, solve

    if args.example == "random":
        dim = 2 if args.dim is None else args.dim
        regimes = 2 if args.regimes is None else args.regimes
        if dim < 1 or regimes < 1:
            print(f"stackjax solve: --dim and --regimes must be positive (got {dim}, {regimes})",
                  file=sys.stderr)  # fmt: skip
            return 2
        game = examples.random_game(jax.random.key(args.seed), d=dim, m=regimes)
    else:
        game = examples.make_example(args.example)
        for flag, given, fixed in (("--dim", args.dim, game.state_dim),
                                   ("--regimes", args.regimes, game.num_regimes)):  # fmt: skip
            if given is not None and given != fixed:
                print(f"stackjax solve: example '{args.example}' has fixed {flag} {fixed} "
                      f"(got {flag} {given}); only '--example random' takes --dim/--regimes",
                      file=sys.stderr)  # fmt: skip
                return 2
    m = game.num_regimes
    print(
        f"stackjax solve: example '{args.example}'  d={game.state_dim} m={m} "
        f"k1={game.leader_dim} k2={game.follower_dim} n={game.noise_dim}  "
        f"T={float(game.T):g}  concept={args.concept}  steps={args.steps}  seed={args.seed}  "
        f"dtype={np.asarray(game.x0).dtype}  device={jax.devices()[0].platform}"
    )
    k_solve, k_eval, k_mc = jax.random.split(jax.random.key(args.seed + 1), 3)

    start = time.perf_counter()
    reference = riccati_reference(game, concept=args.concept)
    jax.block_until_ready(reference.P)
    print(f"Riccati reference solved in {time.perf_counter() - start:.2f} s (incl. compilation)\n")

    # About 8 progress lines with error checks; a chunk size dividing the steps avoids
    # compiling a second, shorter chunk at the end.
    chunk = 500
    if args.steps:  # (None: the solver's default, Gauss-Newton only for LQ games)
        chunk = max(1, min(500, args.steps // 8))
        divisors = [c for c in range(1, chunk + 1) if args.steps % c == 0]
        if divisors and args.steps // divisors[-1] <= 16:
            chunk = divisors[-1]
    config = SolverConfig(concept=args.concept, num_steps=args.steps, chunk_size=chunk,
                          reference_every=1, verbose=True)  # fmt: skip
    start = time.perf_counter()
    solution = solve(game, k_solve, config)
    jax.block_until_ready(solution.state.params)
    train_time = time.perf_counter() - start
    status = "DIVERGED: " + solution.message if solution.diverged else "ok"
    print(
        f"Training: {solution.config.num_steps} Adam steps + {int(solution.state.refine_step)} "
        "Gauss-Newton "
        "iterations in "
        f"{train_time:.1f} s wall (incl. compilation and reference checks; {status})\n"
    )

    err = jax.tree.map(np.asarray, evaluate(solution, reference, k_eval, num_points=4096))
    print("Relative errors against the Riccati reference (4096 points t ~ U[0,T], x ~ N(x0, I); "
          "value: relative L2, policy mean: Euclidean, value at (0, x0): pointwise):")  # fmt: skip
    rows = []
    for i in range(m):
        for k, player in enumerate(("leader", "follower")):
            mean_err = err["mean_leader"][i] if k == 0 else err["mean_follower"][i]
            rows.append([f"regime {i}", player, f"{err['value'][k, i]:.3e}", f"{mean_err:.3e}",
                         f"{err['value_at_x0'][k, i]:.3e}"])  # fmt: skip
    print(_table(["", "player", "value", "policy mean", "value at x0"], rows))
    print(f"(max value error {np.max(err['value']):.3e}; training wall time {train_time:.1f} s)\n")

    x0 = game.x0
    exact = np.asarray(reference.value(0.0, x0))
    learned = np.asarray(solution.value(0.0, x0))
    print(f"Monte Carlo check of the trained policies ({args.paths} paths, 100 Euler steps, "
          f"sampled actions, exact regime switching) against the Riccati V(0, x0):")  # fmt: skip
    run = jax.jit(
        lambda key, i0: monte_carlo_cost(
            game, solution.policy, key, regime0=i0, num_paths=args.paths, num_steps=100
        )
    )
    rows = []
    start = time.perf_counter()
    for i in range(m):
        mean, se = (np.asarray(a) for a in run(jax.random.fold_in(k_mc, i), i))
        for k, player in enumerate(("leader", "follower")):
            z = (mean[k] - exact[k, i]) / se[k]
            rows.append([f"start {i}", player, f"{exact[k, i]:.5f}", f"{learned[k, i]:.5f}",
                         f"{mean[k]:.5f}", f"{se[k]:.5f}", f"{z:+.2f}",
                         "ok" if abs(z) < 4 else "CHECK"])  # fmt: skip
    print(
        _table(["regime", "player", "Riccati V", "network V", "MC mean", "std err", "z", ""], rows)
    )
    print(f"(Monte Carlo took {time.perf_counter() - start:.1f} s; |z| < 4 expected)\n")

    from .plotting import plot_value_and_policy

    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, f"solve_{args.example}.png")
    fig = plot_value_and_policy(solution, reference=reference,
                                title=f"Neural solver vs Riccati (dashed): {args.example} "
                                      f"({args.concept})")  # fmt: skip
    fig.savefig(path, dpi=110)
    hist_path = os.path.join(args.out, f"solve_{args.example}_history.png")
    fig2 = _plot_history(solution.history, final=err,
                         title=f"Training history: {args.example} ({args.concept})")  # fmt: skip
    fig2.savefig(hist_path, dpi=110)
    from .plotting import _pyplot

    _pyplot().close(fig)
    _pyplot().close(fig2)
    print(f"Plots written to {path} and {hist_path}")
    return 1 if solution.diverged else 0


def main(argv=None) -> int:
    """Entry point of the ``stackjax`` console script."""
    from .examples import EXAMPLES, NON_LQ_EXAMPLES

    lq_examples = sorted(set(EXAMPLES) - set(NON_LQ_EXAMPLES))  # both commands need Riccati

    parser = argparse.ArgumentParser(prog="stackjax", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    ric = sub.add_parser(
        "riccati", help="exact LQ reference: values, gains, Monte Carlo check, plot"
    )
    ric.add_argument("--example", default="scalar", choices=lq_examples)
    ric.add_argument("--concept", default="stackelberg", choices=["stackelberg", "nash"])
    ric.add_argument("--num-times", type=int, default=101, help="output time grid size")
    ric.add_argument("--paths", type=int, default=20_000, help="Monte Carlo paths")
    ric.add_argument("--steps", type=int, default=200, help="Euler steps on [0, T]")
    ric.add_argument("--seed", type=int, default=0)
    ric.add_argument("--out", default="out", help="directory for the plot")
    ric.add_argument("--float32", action="store_true", help="do not enable float64")
    ric.set_defaults(func=_riccati)
    sol = sub.add_parser("solve", help="neural solver: errors vs Riccati, Monte Carlo check, plots")
    sol.add_argument("--example", default="random", choices=lq_examples)
    sol.add_argument("--dim", type=int, default=None, help="state dimension (random; default 2)")
    sol.add_argument("--regimes", type=int, default=None, help="regimes (random; default 2)")
    sol.add_argument("--concept", default="stackelberg", choices=["stackelberg", "nash"])
    sol.add_argument("--steps", type=int, default=None,
                     help="Adam steps (default: the solver's; 0 for these LQ examples, which "
                     "Gauss-Newton alone fits faster)")  # fmt: skip
    sol.add_argument("--paths", type=int, default=20_000, help="Monte Carlo paths")
    sol.add_argument("--seed", type=int, default=0)
    sol.add_argument("--out", default="out", help="directory for the plots")
    sol.set_defaults(func=_solve)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
