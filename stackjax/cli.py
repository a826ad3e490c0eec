"""Command line: ``stackjax riccati --example NAME`` (also ``python -m stackjax ...``)."""

from __future__ import annotations

import argparse
import os
import sys
import time


def _table(headers, rows) -> str:
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[j]) for r in cells) for j in range(len(headers))]
    line = lambda r: "  ".join(c.rjust(w) for c, w in zip(r, widths))  # noqa: E731
    return "\n".join([line(cells[0]), line(["-" * w for w in widths])] + [line(r) for r in cells[1:]])


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
    print("Equilibrium values V_{k,i}(0, x0)  (MATH.md §7):")
    rows = [[f"regime {i}", f"{values[0, i]:.6f}", f"{values[1, i]:.6f}"] for i in range(game.num_regimes)]
    print(_table(["", "leader V_1", "follower V_2"], rows), "\n")

    g = sol.gains(0.0)
    print("Policy at t = 0: mu_k = -(L_k x + l_k), follower reaction mu_2 = -(K x + kappa0) + Lambda mu_1:")
    rows = []
    for i in range(game.num_regimes):
        rows.append([f"regime {i}", _fmt(g.L1[i]), _fmt(g.l1[i]), _fmt(g.L2[i]), _fmt(g.l2[i]),
                     _fmt(g.Lambda[i]), _fmt(np.diagonal(g.cov_leader[i])), _fmt(np.diagonal(g.cov_follower[i]))])  # fmt: skip
    print(_table(["", "L1", "l1", "L2", "l2", "Lambda", "diag Sigma1", "diag Sigma2"], rows), "\n")

    print(f"Monte Carlo check of equilibrium play ({args.paths} paths, {args.steps} Euler steps, "
          f"sampled actions, exact regime switching; MATH.md §9.5):")  # fmt: skip
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


def main(argv=None) -> int:
    """Entry point of the ``stackjax`` console script."""
    from .examples import EXAMPLES

    parser = argparse.ArgumentParser(prog="stackjax", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    ric = sub.add_parser("riccati", help="exact LQ reference: values, gains, Monte Carlo check, plot")
    ric.add_argument("--example", default="scalar", choices=sorted(EXAMPLES))
    ric.add_argument("--concept", default="stackelberg", choices=["stackelberg", "nash"])
    ric.add_argument("--num-times", type=int, default=101, help="output time grid size")
    ric.add_argument("--paths", type=int, default=20_000, help="Monte Carlo paths")
    ric.add_argument("--steps", type=int, default=200, help="Euler steps on [0, T]")
    ric.add_argument("--seed", type=int, default=0)
    ric.add_argument("--out", default="out", help="directory for the plot")
    ric.add_argument("--float32", action="store_true", help="do not enable float64")
    ric.set_defaults(func=_riccati)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
