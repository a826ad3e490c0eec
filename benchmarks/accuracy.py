"""Neural solver accuracy against exact references, and time to accuracy.

(a) The accuracy table: for each game, ``stackjax.solve`` with the default `SolverConfig` in
float32, then `stackjax.evaluate` (docs/math.md §9.2: relative L2 errors on ``t ~ U[0, T]``,
``x ~ N(x0, I)``, 2048 points) against the exact float64 reference (`riccati_reference`; the
closed form of `examples.cole_hopf_game` for the non-LQ row, skipped if that example is
absent). Reported: worst value error and worst policy-mean error over players and regimes, wall
time of the ``solve`` call (compilation included), the issue's targets and whether they are met.

(b) Time to accuracy: time to reach a worst relative value error of 1e-2 and 5e-3 for
random games (`examples.random_game`, key 0) with d in {1, 10, 50, 100} and m in {1, 3}.
``solve`` runs with ``reference_every=1`` (a check after every chunk of ``chunk_size = 100``
Adam steps and after every Gauss-Newton iteration); ``history["error_seconds"]`` is the
training clock (compilation included, the checks excluded). The crossing time is interpolated
linearly in (time, log error) between the two checks around the first crossing (``nan``:
never reached).

Run: ``python benchmarks/accuracy.py`` (full; long on 2 loaded CPU cores, results are written
after every case) or ``python benchmarks/accuracy.py --quick`` (the scalar row of the table,
default configuration, and the scaling run for d = 1, m = 1 with a short configuration;
about a minute on an idle machine). Writes ``<out>/accuracy.json``
(JSON lines) and ``<out>/accuracy.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)  # exact references in float64; the solver runs float32

import numpy as np  # noqa: E402

import stackjax as sj  # noqa: E402
from stackjax import (  # noqa: E402
    LayoutConfig,
    SolverConfig,
    examples,
    resolve_config,
)
from stackjax._solver._defaults import refine_iterations  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    DEFAULT_RESULTS_DIR,
    block,
    device_label,
    device_string,
    format_table,
    timestamp,
    write_jsonl,
)

THRESHOLDS = (1e-2, 5e-3)


def _random(d: int, m: int):
    return lambda: examples.random_game(jax.random.key(0), d=d, m=m)


def table_cases(quick: bool) -> list[tuple[str, object, float | None, float | None, int]]:
    """(name, game constructor, value target, policy-mean target, d) of the accuracy table."""
    if quick:
        return [("scalar", lambda: examples.make_example("scalar"), 1e-3, 5e-3, 1)]
    cases = [
        ("scalar", lambda: examples.make_example("scalar"), 1e-3, 5e-3, 1),
        ("zero-sum", lambda: examples.make_example("zero-sum"), 5e-3, 1e-2, 2),
        (
            "controlled-diffusion",
            lambda: examples.make_example("controlled-diffusion"),
            5e-3,
            1e-2,
            2,
        ),
    ]
    if hasattr(examples, "cole_hopf_game"):
        cases.append(("cole-hopf (non-LQ)", examples.cole_hopf_game, None, None, 10))
    cases += [
        ("random d=10 m=3", _random(10, 3), 5e-3, 1e-2, 10),
        ("random d=100 m=2", _random(100, 2), 1e-2, 2e-2, 100),
    ]
    return cases


def scaling_cases(quick: bool, dims=(1, 10, 50, 100), regimes=(1, 3)) -> list[tuple[int, int]]:
    if quick:
        return [(1, 1)]
    return [(d, m) for d in dims for m in regimes]


#: SolverConfig changes from ``--config`` (JSON), applied to every case.
CONFIG_CHANGES: dict = {}


def _with_changes(config: SolverConfig, changes: dict) -> SolverConfig:
    """``config`` with ``changes``: a dict changes fields of a group, anything else replaces a
    field (``{"concept": "nash", "adam": {"steps": 0}}``)."""
    return config.replace(**{
        name: getattr(config, name).replace(**value) if isinstance(value, dict) else value
        for name, value in changes.items()
    })  # fmt: skip


def _config(quick: bool) -> SolverConfig:
    config = _with_changes(SolverConfig(layout=LayoutConfig(dtype="float32")), CONFIG_CHANGES)
    if quick:
        config = _with_changes(
            config, {"adam": {"steps": 300},
                     "gauss_newton": {"steps": 2, "batch_size": 256, "cg_iterations": 20}},
        )  # fmt: skip
    return config


def _loop(quick: bool, **changes) -> dict:
    """`solve`'s loop arguments: silent (and without diagnostics with ``quick``)."""
    return {"verbose": False, **({"diagnostic_points": 0} if quick else {}), **changes}


def _reference(game):
    if hasattr(game, "exact_solution"):
        return game.exact_solution()
    return sj.riccati_reference(game)


def _worst(err: dict) -> tuple[float, float]:
    mean = max(float(np.max(err["mean_leader"])), float(np.max(err["mean_follower"])))
    return float(np.max(err["value"])), mean


def run_table_case(name, make_game, target_v, target_mean, quick):
    game = make_game()
    config = _config(False)  # the table is about the default configuration
    start = time.perf_counter()
    solution = sj.solve(game, jax.random.key(1), config, **_loop(False))
    block(solution.state.params)
    seconds = time.perf_counter() - start
    err = sj.evaluate(solution, _reference(game), jax.random.key(2), num_points=2048)
    v_err, mean_err = _worst(err)
    met = None
    if target_v is not None:
        met = bool(v_err <= target_v and mean_err <= target_mean)
    return {
        "kind": "table",
        "game": name,
        "d": int(game.state_dim),
        "m": int(game.num_regimes),
        "value_error": v_err,
        "mean_error": mean_err,
        "seconds": seconds,
        "target_value": target_v,
        "target_mean": target_mean,
        "met": met,
        "diverged": solution.diverged,
        "config": repr(config),
        "load": os.getloadavg(),
        "time": timestamp(),
    }


def crossing_time(seconds: np.ndarray, errors: np.ndarray, threshold: float) -> float:
    """First time the error falls to ``threshold``, linear in (time, log error); nan if never."""
    below = np.nonzero(errors <= threshold)[0]
    if below.size == 0:
        return float("nan")
    j = int(below[0])
    if j == 0:
        return float(seconds[0])
    e0, e1 = np.log(errors[j - 1]), np.log(errors[j])
    w = (np.log(threshold) - e0) / (e1 - e0) if e1 != e0 else 1.0
    return float(seconds[j - 1] + w * (seconds[j] - seconds[j - 1]))


def run_scaling_case(d, m, quick):
    game = examples.random_game(jax.random.key(0), d=d, m=m)
    config = _config(quick)
    loop = _loop(quick, reference_every=1, chunk_size=100)
    solution = sj.solve(game, jax.random.key(1), config, **loop)
    h = solution.history
    seconds = np.asarray(h["error_seconds"], float)
    v_err = np.max(np.asarray(h["value_error"]), axis=(1, 2))
    mean_err = np.max(np.asarray(h["mean_error"]), axis=(1, 2))
    return {
        "kind": "scaling",
        "d": d,
        "m": m,
        "seconds": seconds.tolist(),
        "step": np.asarray(h["error_step"]).tolist(),
        "value_error": v_err.tolist(),
        "mean_error": mean_err.tolist(),
        "final_value_error": float(v_err[-1]),
        **{f"time_to_{t:g}": crossing_time(seconds, v_err, t) for t in THRESHOLDS},
        "num_steps": resolve_config(game, config).adam.steps,
        "refine_steps": refine_iterations(game, config),
        "load": os.getloadavg(),
        "time": timestamp(),
    }


def _fmt(x, spec=".2e"):
    return "-" if x is None or (isinstance(x, float) and np.isnan(x)) else format(x, spec)


def print_tables(table_rows, scaling_rows) -> None:
    if table_rows:
        print("\n(a) accuracy table: default SolverConfig, float32; worst over players/regimes")
        print(
            format_table(
                ["game", "d", "m", "V err", "mean err", "time [s]", "target V/mean", "met"],
                [
                    [
                        r["game"],
                        r["d"],
                        r["m"],
                        _fmt(r["value_error"]),
                        _fmt(r["mean_error"]),
                        _fmt(r["seconds"], ".1f"),
                        "-"
                        if r["target_value"] is None
                        else f"{r['target_value']:g}/{r['target_mean']:g}",
                        "-" if r["met"] is None else ("yes" if r["met"] else "NO"),
                    ]
                    for r in table_rows
                ],
            )  # fmt: skip
        )
    if scaling_rows:
        print("\n(b) time to relative value error (training clock incl. compilation)")
        print(
            format_table(
                ["d", "m", "t(1e-2) [s]", "t(5e-3) [s]", "final V err", "total [s]"],
                [
                    [
                        r["d"],
                        r["m"],
                        _fmt(r["time_to_0.01"], ".1f"),
                        _fmt(r["time_to_0.005"], ".1f"),
                        _fmt(r["final_value_error"]),
                        _fmt(r["seconds"][-1], ".1f"),
                    ]
                    for r in scaling_rows
                ],
            )  # fmt: skip
        )


def plot(scaling_rows, table_rows, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    ax = axes[0]
    for r in scaling_rows:
        ax.semilogy(r["seconds"], r["value_error"], marker=".", label=f"d={r['d']}, m={r['m']}")
    for t in THRESHOLDS:
        ax.axhline(t, color="gray", lw=0.8, ls="--")
    ax.set_xlabel("training wall time [s] (compilation included)")
    ax.set_ylabel("worst relative L2 value error")
    ax.set_title("random games: error vs wall time")
    ax.legend(fontsize=8)
    ax = axes[1]
    if table_rows:
        names = [r["game"] for r in table_rows]
        x = np.arange(len(names))
        ax.bar(x - 0.2, [r["value_error"] for r in table_rows], 0.4, label="value")
        ax.bar(x + 0.2, [r["mean_error"] for r in table_rows], 0.4, label="policy mean")
        ax.set_yscale("log")
        ax.set_xticks(x, names, rotation=30, ha="right", fontsize=8)
        ax.set_title("accuracy table: worst errors (default config)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="CI mode (< 60 s idle)")
    parser.add_argument("--out", type=Path, default=DEFAULT_RESULTS_DIR)
    parser.add_argument("--skip-table", action="store_true")
    parser.add_argument("--skip-scaling", action="store_true")
    parser.add_argument("--dims", type=int, nargs="+", default=[1, 10, 50, 100],
                        help="state dimensions of the time-to-accuracy runs")  # fmt: skip
    parser.add_argument("--regimes", type=int, nargs="+", default=[1, 3],
                        help="regime counts of the time-to-accuracy runs")  # fmt: skip
    parser.add_argument("--config", type=json.loads, default={},
                        help="SolverConfig changes as JSON, e.g. '{\"adam\": {\"steps\": 0}}' "
                        "(every case: the table then no longer shows the defaults)")  # fmt: skip
    parser.add_argument("--max-table-dim", type=int, default=None,
                        help="leave out table rows with a larger state dimension")  # fmt: skip
    args = parser.parse_args(argv)
    CONFIG_CHANGES.update(args.config)
    label = device_label()
    print(f"device: {device_string(label)}")
    if args.config:
        print(f"SolverConfig changes: {args.config}")
    json_path = args.out / "accuracy.json"
    write_jsonl(json_path, [{"kind": "device", "quick": args.quick, **label, "time": timestamp()}])
    table_rows, scaling_rows = [], []
    tables = [] if args.skip_table else table_cases(args.quick)
    if args.max_table_dim is not None:
        tables = [c for c in tables if c[4] <= args.max_table_dim]
    scalings = [] if args.skip_scaling else scaling_cases(args.quick, args.dims, args.regimes)
    # Cheap cases first (results are written after every case): d = 100 comes last.
    jobs = [("table", c) for c in tables if c[4] < 100]
    jobs += [("scaling", c) for c in scalings if c[0] < 100]
    jobs += [("table", c) for c in tables if c[4] >= 100]
    jobs += [("scaling", c) for c in scalings if c[0] >= 100]
    for kind, case in jobs:
        if kind == "table":
            name, make_game, tv, tm, _ = case
            row = run_table_case(name, make_game, tv, tm, args.quick)
            table_rows.append(row)
            print(
                f"{row['time']} load {row['load'][0]:.1f}: {name}: V {row['value_error']:.2e}, "
                f"mean {row['mean_error']:.2e}, {row['seconds']:.1f} s",
                flush=True,
            )
        else:
            d, m = case
            row = run_scaling_case(d, m, args.quick)
            scaling_rows.append(row)
            print(
                f"{row['time']} load {row['load'][0]:.1f}: d={d} m={m}: "
                f"t(1e-2) {_fmt(row['time_to_0.01'], '.1f')} s, "
                f"t(5e-3) {_fmt(row['time_to_0.005'], '.1f')} s, "
                f"final V {row['final_value_error']:.2e}",
                flush=True,
            )
        write_jsonl(json_path, [row], append=True)
        plot(scaling_rows, table_rows, args.out / "accuracy.png")
    print_tables(table_rows, scaling_rows)
    plot(scaling_rows, table_rows, args.out / "accuracy.png")
    print(f"wrote {json_path} and {args.out / 'accuracy.png'}")


if __name__ == "__main__":
    main()
