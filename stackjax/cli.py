"""Command line: ``stackjax riccati --example NAME`` (exact LQ reference) and
``stackjax solve --example NAME`` (neural solver vs the reference); also ``python -m stackjax``."""

from __future__ import annotations

import argparse
import functools
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
    from ._xla_flags import loop_jit

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

    print(f"Monte Carlo check of equilibrium play ({args.paths} paths each with {args.steps} and "
          f"{2 * args.steps} Euler steps, Richardson-extrapolated; sampled actions, exact regime "
          "switching; docs/math.md §9.5):")  # fmt: skip
    mc = functools.partial(monte_carlo_cost, num_paths=args.paths, richardson=True)
    run = loop_jit(lambda key, i0: mc(game, sol.policy, key, regime0=i0, num_steps=args.steps))
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


def _load_game(args):
    """The game of ``--game FILE`` or ``--example NAME`` (``None`` and a message on error)."""
    import jax

    from . import examples, load_game

    if args.game is not None:
        try:
            return load_game(args.game), os.path.splitext(os.path.basename(args.game))[0], None
        except (OSError, ValueError, KeyError, TypeError) as err:
            return None, None, f"--game {args.game}: {err}"
    if args.example == "random":
        dim = 2 if args.dim is None else args.dim
        regimes = 2 if args.regimes is None else args.regimes
        return examples.random_game(jax.random.key(args.seed), d=dim, m=regimes), "random", None
    game = examples.make_example(args.example)
    for flag, given, fixed in (("--dim", args.dim, game.state_dim),
                               ("--regimes", args.regimes, game.num_regimes)):  # fmt: skip
        if given is not None and given != fixed:
            return (
                None,
                None,
                (
                    f"example '{args.example}' has fixed {flag} {fixed} (got {flag} {given}); only "
                    "'--example random' takes --dim/--regimes"
                ),
            )
    return game, args.example, None


def _solve(args) -> int:
    import jax
    import numpy as np

    from . import evaluate, monte_carlo_cost, riccati_reference
    from ._solver import AdamConfig, SolverConfig, solve
    from ._xla_flags import loop_jit

    game, name, problem = _load_game(args)
    if problem:
        print(f"stackjax solve: {problem}", file=sys.stderr)
        return 2
    lq = bool(getattr(game, "quadratic_value", False))
    m = game.num_regimes
    say = (lambda *a, **k: None) if args.quiet else print
    print(
        f"stackjax solve: {name}  d={game.state_dim} m={m} k1={game.leader_dim} "
        f"k2={game.follower_dim} n={game.noise_dim}  T={float(game.horizon):g}  "
        f"concept={args.concept}  seed={args.seed}  dtype={np.asarray(game.initial_state).dtype}"
        f"  device={jax.devices()[0].platform}"
    )
    k_solve, k_eval, k_mc = jax.random.split(jax.random.key(args.seed + 1), 3)

    start = time.perf_counter()
    if lq:
        reference, what = riccati_reference(game, concept=args.concept), "Riccati reference"
        jax.block_until_ready(reference.P)
    else:
        reference, what = game.exact_solution(), "exact solution"
    say(f"{what} ready in {time.perf_counter() - start:.2f} s (incl. compilation)\n")

    # About 8 progress lines; a chunk size dividing the steps avoids compiling a second chunk.
    chunk = 500
    if args.steps:  # (None: the solver's default, Gauss-Newton only for LQ games)
        chunk = max(1, min(500, args.steps // 8))
        divisors = [c for c in range(1, chunk + 1) if args.steps % c == 0]
        if divisors and args.steps // divisors[-1] <= 16:
            chunk = divisors[-1]
    config = SolverConfig(concept=args.concept, adam=AdamConfig(steps=args.steps))
    start = time.perf_counter()
    # Reference checks for LQ games only: an exact non-LQ value (quadrature) is costly per check.
    solution = solve(game, k_solve, config, chunk_size=chunk, reference_every=1 if lq else 0,
                     reference=reference, verbose=not args.quiet)  # fmt: skip
    jax.block_until_ready(solution.state.params)
    train_time = time.perf_counter() - start
    status = "DIVERGED: " + solution.message if bool(solution.diverged) else "ok"
    print(
        f"Training: {solution.config.adam.steps} Adam steps + {int(solution.state.refine_step)} "
        f"Gauss-Newton iterations in {train_time:.1f} s wall (incl. compilation and reference "
        f"checks; {status})\n"
    )

    err = jax.tree.map(np.asarray, evaluate(solution, reference, k_eval, num_points=4096))
    print(f"Relative errors against the {what} (4096 points t ~ U[0,T], x ~ N(x0, I); value: "
          "relative L2, policy mean: Euclidean, value at (0, x0): pointwise):")  # fmt: skip
    rows = []
    for i in range(m):
        for k, player in enumerate(("leader", "follower")):
            mean_err = err["mean_leader"][i] if k == 0 else err["mean_follower"][i]
            rows.append([f"regime {i}", player, f"{err['value'][k, i]:.3e}", f"{mean_err:.3e}",
                         f"{err['value_at_x0'][k, i]:.3e}"])  # fmt: skip
    print(_table(["", "player", "value", "policy mean", "value at x0"], rows))
    print(f"(max value error {np.max(err['value']):.3e}; training wall time {train_time:.1f} s)\n")

    x0 = game.initial_state
    exact = np.asarray(reference.value(0.0, x0))
    learned = np.asarray(solution.value(0.0, x0))
    print(f"Monte Carlo check of the trained policies ({args.paths} paths each with 25 and 50 "
          "Euler steps, Richardson-extrapolated; sampled actions, exact regime switching) against "
          f"the {what}'s V(0, x0):")  # fmt: skip
    mc = functools.partial(monte_carlo_cost, num_paths=args.paths, richardson=True)
    run = loop_jit(lambda key, i0: mc(game, solution.policy, key, regime0=i0, num_steps=25))
    rows = []
    start = time.perf_counter()
    for i in range(m):
        mean, se = (np.asarray(a) for a in run(jax.random.fold_in(k_mc, i), i))
        for k, player in enumerate(("leader", "follower")):
            z = (mean[k] - exact[k, i]) / se[k]
            rows.append([f"start {i}", player, f"{exact[k, i]:.5f}", f"{learned[k, i]:.5f}",
                         f"{mean[k]:.5f}", f"{se[k]:.5f}", f"{z:+.2f}",
                         "ok" if abs(z) < 4 else "CHECK"])  # fmt: skip
    print(_table(["regime", "player", "exact V", "network V", "MC mean", "std err", "z", ""],
                 rows))  # fmt: skip
    print(f"(Monte Carlo took {time.perf_counter() - start:.1f} s; |z| < 4 expected)\n")

    from .plotting import _pyplot, plot_history, plot_value_and_policy

    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, f"solve_{name}.png")
    caption = f"Neural solver vs {what}: {name} ({args.concept})"
    fig = plot_value_and_policy(solution, reference=reference, title=caption)
    fig.savefig(path, dpi=110)
    hist_path = os.path.join(args.out, f"solve_{name}_history.png")
    fig2 = plot_history(solution.history, final=err,
                        title=f"Training history: {name} ({args.concept})")  # fmt: skip
    fig2.savefig(hist_path, dpi=110)
    _pyplot().close(fig)
    _pyplot().close(fig2)
    print(f"Plots written to {path} and {hist_path}")
    return 1 if bool(solution.diverged) else 0


class _Parser(argparse.ArgumentParser):
    """Bad arguments: one line on stderr and exit code 2, before any work."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _int_at_least(low: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value

    parse.__name__ = f"integer >= {low}"
    return parse


def _example_help() -> str:
    from .examples import EXAMPLES

    lines = []
    for name, make in EXAMPLES.items():
        doc = (getattr(make, "__doc__", None) or "").strip().splitlines()
        first = doc[0] if doc else "random LQ game (random_game; --dim, --regimes)"
        lines.append(f"  {name:22s}{first}")
    return "examples:\n" + "\n".join(lines)


def main(argv=None) -> int:
    """Entry point of the ``stackjax`` console script."""
    from .examples import EXAMPLES, NON_LQ_EXAMPLES

    lq_examples = sorted(set(EXAMPLES) - set(NON_LQ_EXAMPLES))
    fmt = argparse.RawDescriptionHelpFormatter
    parser = _Parser(prog="stackjax", description=__doc__, epilog=_example_help(),
                     formatter_class=fmt)  # fmt: skip
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    ric = sub.add_parser(
        "riccati", help="exact LQ reference: values, gains, Monte Carlo check, plot",
        epilog=_example_help(), formatter_class=fmt,
    )  # fmt: skip
    ric.add_argument("--example", default="scalar", choices=lq_examples)
    ric.add_argument("--concept", default="stackelberg", choices=["stackelberg", "nash"])
    ric.add_argument("--num-times", type=_int_at_least(2), default=101,
                     help="output time grid size")  # fmt: skip
    ric.add_argument("--paths", type=_int_at_least(2), default=20_000,
                     help="Monte Carlo paths per step size")  # fmt: skip
    ric.add_argument("--steps", type=_int_at_least(1), default=100,
                     help="Euler steps N on [0, T] (Richardson over N and 2N)")  # fmt: skip
    ric.add_argument("--seed", type=_int_at_least(0), default=0)
    ric.add_argument("--out", default="out", help="directory for the plot")
    ric.add_argument("--float32", action="store_true", help="do not enable float64")
    ric.set_defaults(func=_riccati)
    sol = sub.add_parser(
        "solve", help="neural solver: errors vs the exact solution, Monte Carlo check, plots",
        epilog=_example_help(), formatter_class=fmt,
    )  # fmt: skip
    source = sol.add_mutually_exclusive_group()
    source.add_argument("--example", default="random", choices=sorted(EXAMPLES))
    source.add_argument("--game", default=None, metavar="FILE.npz",
                        help="an LQ game saved with LQGame.save")  # fmt: skip
    sol.add_argument("--dim", type=_int_at_least(1), default=None,
                     help="state dimension (random; default 2)")  # fmt: skip
    sol.add_argument("--regimes", type=_int_at_least(1), default=None,
                     help="regimes (random; default 2)")  # fmt: skip
    sol.add_argument("--concept", default="stackelberg", choices=["stackelberg", "nash"])
    sol.add_argument("--steps", type=_int_at_least(0), default=None,
                     help="Adam steps (default: the solver's; 0 for LQ games, which "
                     "Gauss-Newton alone fits faster)")  # fmt: skip
    sol.add_argument("--paths", type=_int_at_least(2), default=20_000,
                     help="Monte Carlo paths per step size")  # fmt: skip
    sol.add_argument("--seed", type=_int_at_least(0), default=0)
    sol.add_argument("--out", default="out", help="directory for the plots")
    sol.add_argument("--quiet", action="store_true", help="no progress lines")
    sol.set_defaults(func=_solve)
    args = parser.parse_args(argv)
    if getattr(args, "game", None) is not None and not os.path.isfile(args.game):
        parser.exit(2, f"stackjax: error: --game {args.game}: no such file\n")
    return args.func(args)


def enable_compilation_cache() -> str | None:
    """Turns on JAX's persistent compilation cache in the user's cache directory, so that a
    second run of the same command skips most compilation. Off with ``STACKJAX_NO_CACHE=1``;
    the directory is ``$STACKJAX_CACHE_DIR`` or ``$XDG_CACHE_HOME/stackjax/jax`` (default
    ``~/.cache/stackjax/jax``). Returns the directory (``None`` when off)."""
    if os.environ.get("STACKJAX_NO_CACHE", "") not in ("", "0"):
        return None
    import jax

    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    path = os.environ.get("STACKJAX_CACHE_DIR") or os.path.join(base, "stackjax", "jax")
    try:
        os.makedirs(path, exist_ok=True)
    except OSError:  # read-only home: run without the cache
        return None
    jax.config.update("jax_compilation_cache_dir", path)
    # Every program, the many small ones too: together they compile for seconds.
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return path


def run() -> int:
    """The ``stackjax`` console script: `main` with the persistent compilation cache."""
    enable_compilation_cache()
    return main()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(run())
