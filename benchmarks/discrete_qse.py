"""Benchmark: batched ``quantal_stackelberg`` (one jitted vmapped call) vs a per-game scipy loop.

Both use the same multi-start scheme (all vertices, the barycentre and the best points of the
same simplex grid); the scipy baseline runs ``scipy.optimize.minimize`` (SLSQP on the simplex)
from every start, game by game. The scipy loop is timed on a subset of games and reported as
games per second. Usage::

    python benchmarks/discrete_qse.py            # 10,000 random 5x5 games
    python benchmarks/discrete_qse.py --quick    # small run for CI
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pathlib
import time

import jax
import jax.numpy as jnp
import numpy as np
from scipy.optimize import minimize

from stackjax.discrete import quantal_stackelberg


def scipy_qse(A, B, tau, grid, num_starts):
    """Per-game reference: same starts, scipy SLSQP from each, best value."""

    def value(x):
        z = x @ B / tau
        q = np.exp(z - z.max())
        q /= q.sum()
        return q @ (x @ A)

    m = A.shape[0]
    grid_values = np.array([value(g) for g in grid])
    top = grid[np.argsort(grid_values)[-num_starts:]]
    starts = np.concatenate([np.eye(m), np.full((1, m), 1.0 / m), top])
    constraints = ({"type": "eq", "fun": lambda x: x.sum() - 1.0},)
    best = -np.inf
    for x0 in starts:
        res = minimize(
            lambda x: -value(x), x0, method="SLSQP", bounds=[(0, 1)] * m, constraints=constraints
        )
        best = max(best, value(np.clip(res.x, 0, None) / np.clip(res.x, 0, None).sum()))
    return best


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small run (CI)")
    parser.add_argument("--games", type=int, default=None)
    parser.add_argument("--scipy-games", type=int, default=None)
    parser.add_argument("--size", type=int, default=5)
    parser.add_argument("--temperature", type=float, default=0.1)
    parser.add_argument(
        "--out", type=pathlib.Path, default=pathlib.Path(__file__).resolve().parent / "results",
        help="results directory",
    )  # fmt: skip
    args = parser.parse_args(argv)
    games = args.games or (500 if args.quick else 10_000)
    scipy_games = args.scipy_games or (10 if args.quick else 100)
    m = n = args.size
    num_starts = 8

    rng = np.random.default_rng(0)
    A = rng.uniform(size=(games, m, n))
    B = rng.uniform(size=(games, m, n))
    tau = args.temperature
    solve = jax.jit(jax.vmap(lambda a, b: quantal_stackelberg(a, b, tau, num_starts=num_starts)))
    A_j, B_j = jnp.asarray(A), jnp.asarray(B)

    t0 = time.perf_counter()
    compiled = solve.lower(A_j, B_j).compile()
    compile_time = time.perf_counter() - t0
    jax.block_until_ready(compiled(A_j, B_j))  # warm-up
    runs = []
    for _ in range(3):
        t0 = time.perf_counter()
        out = jax.block_until_ready(compiled(A_j, B_j))
        runs.append(time.perf_counter() - t0)
    jax_time = min(runs)
    jax_rate = games / jax_time

    from stackjax.discrete._normal_form import _default_resolution, _simplex_grid_np

    grid = _simplex_grid_np(m, _default_resolution(m, 512))
    t0 = time.perf_counter()
    ref = np.array([scipy_qse(A[i], B[i], tau, grid, num_starts) for i in range(scipy_games)])
    scipy_time = time.perf_counter() - t0
    scipy_rate = scipy_games / scipy_time
    values = np.asarray(out.leader_value[:scipy_games])
    agreement = float(np.max(ref - values))

    result = {
        "games": games,
        "game_shape": [m, n],
        "temperature": tau,
        "dtype": str(out.leader_value.dtype),
        "backend": jax.default_backend(),
        "jax_compile_seconds": compile_time,
        "jax_run_seconds": jax_time,
        "jax_games_per_second": jax_rate,
        "scipy_games_timed": scipy_games,
        "scipy_seconds": scipy_time,
        "scipy_games_per_second": scipy_rate,
        "speedup": jax_rate / scipy_rate,
        "max_scipy_minus_jax_value": agreement,
        "cpu_count": os.cpu_count(),
    }
    rows = [
        ("method", "games", "seconds", "games/s"),
        ("jax (vmap+jit)", games, f"{jax_time:.3f}", f"{jax_rate:,.0f}"),
        ("scipy loop", scipy_games, f"{scipy_time:.3f}", f"{scipy_rate:,.1f}"),
    ]
    widths = [max(len(str(r[i])) for r in rows) for i in range(4)]
    for r in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)))
    print(f"compile time (jax): {compile_time:.2f} s")
    print(f"speedup: {result['speedup']:.0f}x   (goal >= 100x)")
    print(f"max (scipy - jax) leader value on common games: {agreement:.2e}")
    out_dir = args.out
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "discrete_qse.json"
    path.write_text(json.dumps(result, indent=2))
    print(f"wrote {path}")
    assert math.isfinite(result["speedup"])
    return result


if __name__ == "__main__":
    main()
