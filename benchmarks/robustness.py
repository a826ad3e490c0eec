"""The solver on a held-out family of games: accuracy of the default configuration on games it
was not tuned on, and how well the error indicator predicts the true error.

The family (`family_game`) varies what users vary, one independent draw per game: regimes
``m`` in {1, 2, 3}; noise rank ``n`` in {1, min(3, d), d} and its size (0.1-1 per column);
``|x0|`` in {0, sqrt(d) / 2, sqrt(d)}; horizon ``T`` log-uniform in [0.1, 20]; generator rates
log-uniform in [0.3, 1e3]; control dimensions in {1, max(1, d // 4), d}; state- and
control-cost condition numbers log-uniform in [1, 1e3]; temperatures in [0, 1] (0 with
probability 1/5 each); controlled diffusion with probability 1/4; the concept Stackelberg,
Nash or zero-sum (a controller against a disturbance). A draw whose coupled Riccati system
has no solution on [0, T] (finite escape, lost well-posedness) is redrawn, so every game has
an exact reference.

For each game: ``stackjax.solve(game, key)`` with the default configuration (float32; the
concept set in `SolverConfig`), then `stackjax.evaluate` against `riccati_reference`
(float64): relative L2 errors of the values and the policy means over ``t ~ U[0, T]``,
``x ~ N(x0, I)`` (2048 points), and the relative error at ``(0, x0)``; the wall time of
``solve`` (compilation included); the solution's error indicators (`solution_diagnostics`)
and whether ``solve`` issued an `AccuracyWarning`. Reported per ``d``: median, 90th
percentile and worst of each error and of the wall time, the number of games within the
targets (value and ``V(0, x0)`` <= 1e-2, policy mean <= 2e-2), and the indicator's record:
games above 1e-2 that it flagged (all must be) and accurate games it flagged (false alarms).

Run: ``python benchmarks/robustness.py`` (16 games for each d in {2, 10}, 8 for d = 50 and 100;
hours on 2 CPU cores; each record is written as soon as its game is done, ``--dims`` and
``--games`` select a part) or ``--quick`` (the CI slice: game 0 for d = 2 and d = 3).
Writes ``<out>/robustness.json`` (JSON lines) and ``<out>/robustness.png``.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)  # exact references in float64; the solver runs float32

import numpy as np  # noqa: E402

import stackjax as sj  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    DEFAULT_RESULTS_DIR,
    device_label,
    device_string,
    format_table,
    timestamp,
    write_jsonl,
)

#: Targets of the default configuration (relative errors).
VALUE_TARGET, MEAN_TARGET, X0_TARGET = 1e-2, 2e-2, 1e-2
CONCEPTS = ("stackelberg", "nash", "zero_sum")


def _log_uniform(rng, low, high):
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def _conditioned(rng, k, condition, scale=1.0):
    """[k, k] symmetric positive definite, eigenvalues geometric from ``scale`` down to
    ``scale / condition`` in a random basis."""
    basis, _ = np.linalg.qr(rng.normal(size=(k, k)))
    eigenvalues = scale * np.geomspace(1.0, 1.0 / condition, k)
    return (basis * eigenvalues) @ basis.T


def _draw(rng, d: int) -> tuple[dict, dict]:
    """One draw of the family: ``make_lq_game`` symbols and a description of the draw."""
    m = int(rng.choice([1, 2, 3]))
    concept = str(rng.choice(CONCEPTS, p=[0.5, 0.25, 0.25]))
    k1, k2 = (int(rng.choice(sorted({1, max(1, d // 4), d}))) for _ in range(2))
    n = int(rng.choice(sorted({1, min(3, d), d})))
    noise = _log_uniform(rng, 0.1, 1.0)
    radius = float(rng.choice([0.0, 0.5, 1.0]) * np.sqrt(d))
    direction = rng.normal(size=d)
    x0 = radius * direction / np.linalg.norm(direction)
    horizon = _log_uniform(rng, 0.1, 20.0)
    rate = _log_uniform(rng, 0.3, 1e3)
    state_condition, control_condition = _log_uniform(rng, 1, 1e3), _log_uniform(rng, 1, 1e3)
    lam = [0.0 if rng.uniform() < 0.2 else float(rng.uniform(0.0, 1.0)) for _ in range(2)]
    controlled = concept != "zero_sum" and rng.uniform() < 0.25

    off = rng.uniform(0.2, 1.0, (m, m)) * rate
    np.fill_diagonal(off, 0.0)
    Gamma = off - np.diag(off.sum(axis=1))
    A = -0.5 * np.eye(d) + 0.5 * rng.normal(size=(m, d, d)) / np.sqrt(d)
    B1 = rng.normal(size=(m, d, k1)) / np.sqrt(d)
    B2 = rng.normal(size=(m, d, k2)) / np.sqrt(d)
    b = 0.1 * rng.normal(size=(m, d))
    s = noise * rng.normal(size=(m, n, d)) / np.sqrt(d)  # column norms ~ noise
    C = 0.1 * noise * rng.normal(size=(m, n, d, d)) / np.sqrt(d)
    D1 = np.zeros((m, n, d, k1))
    D2 = np.zeros((m, n, d, k2))
    if controlled:
        D1 = 0.2 * rng.normal(size=(m, n, d, k1)) / np.sqrt(d * n)
        D2 = 0.2 * rng.normal(size=(m, n, d, k2)) / np.sqrt(d * n)
    Q = np.zeros((2, m, d, d))
    G = np.zeros((2, m, d, d))
    R11 = np.zeros((2, m, k1, k1))
    R12 = np.zeros((2, m, k1, k2))
    R22 = np.zeros((2, m, k2, k2))
    q = np.zeros((2, m, d))
    for i in range(m):
        Q[0, i] = _conditioned(rng, d, state_condition)
        G[0, i] = _conditioned(rng, d, state_condition, 0.5)
        R11[0, i] = _conditioned(rng, k1, control_condition)
        q[0, i] = 0.1 * rng.normal(size=d)
        if concept == "zero_sum":  # the disturbance pays -gamma^2 |u2|^2 in the leader's cost
            R22[0, i] = -9.0 * np.eye(k2)
            continue
        R22[0, i] = 0.5 * np.eye(k2)
        Q[1, i] = _conditioned(rng, d, state_condition, 0.5)
        G[1, i] = _conditioned(rng, d, state_condition, 0.5)
        R11[1, i] = 0.3 * np.eye(k1)
        R22[1, i] = _conditioned(rng, k2, control_condition)
        R12[1, i] = 0.3 * rng.normal(size=(k1, k2)) / np.sqrt(max(k1, k2))
        q[1, i] = 0.1 * rng.normal(size=d)
    symbols = dict(
        T=horizon, Gamma=Gamma if m > 1 else np.zeros((1, 1)), A=A, B1=B1, B2=B2, b=b, C=C,
        D1=D1, D2=D2, s=s, Q=Q, R11=R11, R12=R12, R22=R22, q=q, G=G, lam=lam, x0=x0,
        zero_sum=concept == "zero_sum",
    )  # fmt: skip
    spec = dict(
        d=d, m=m, concept=concept, k1=k1, k2=k2, n=n, noise=noise, x0_norm=radius, T=horizon,
        rate=rate if m > 1 else 0.0, state_condition=state_condition,
        control_condition=control_condition, lam=lam, controlled_diffusion=bool(controlled),
    )  # fmt: skip
    return symbols, spec


def family_game(index: int, d: int, *, max_draws: int = 50):
    """Game ``index`` of the family at dimension ``d``: ``(game, concept, spec)``.

    Deterministic in ``(index, d)``; draws failing the constructor's checks or without a
    Riccati solution on [0, T] are redrawn. ``concept`` is the `SolverConfig` concept
    (``"stackelberg"`` for zero-sum games, which are flagged on the game).
    """
    for attempt in range(max_draws):
        rng = np.random.default_rng([d, index, attempt])
        symbols, spec = _draw(rng, d)
        concept = "nash" if spec["concept"] == "nash" else "stackelberg"
        try:
            game = sj.make_lq_game(**symbols)
            sj.riccati_reference(game, concept=concept)  # compiled once: run_game reuses it
        except ValueError:
            continue
        spec["draws"] = attempt + 1
        return game, concept, spec
    raise RuntimeError(f"no well-posed draw for game {index} at d = {d} in {max_draws} tries")


def run_game(index: int, d: int, seed: int = 0) -> dict:
    """Solves one game with the default configuration and measures it against Riccati."""
    game, concept, spec = family_game(index, d)
    reference = sj.riccati_reference(game, concept=concept)
    config = sj.SolverConfig(concept=concept, layout=sj.LayoutConfig(dtype="float32"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tic = time.perf_counter()
        solution = sj.solve(game, jax.random.key(seed), config, verbose=False)
        seconds = time.perf_counter() - tic
    err = sj.evaluate(solution, reference, jax.random.key(seed + 1), num_points=2048)
    diag = solution.diagnostics
    indicator = max(
        float(np.max(diag["error_indicator"])), float(np.max(diag["error_indicator_x0"]))
    )
    worst = lambda a: float(np.nanmax(np.asarray(a)))  # noqa: E731
    record = dict(
        kind="game", index=index, **spec, seconds=seconds,
        value_error=worst(err["value"]),
        mean_error=max(worst(err["mean_leader"]), worst(err["mean_follower"])),
        x0_error=worst(err["value_at_x0"]),
        indicator=indicator,
        warned=any(issubclass(w.category, sj.AccuracyWarning) for w in caught),
        diverged=bool(solution.diverged),
    )  # fmt: skip
    record["within_targets"] = bool(
        record["value_error"] <= VALUE_TARGET
        and record["mean_error"] <= MEAN_TARGET
        and record["x0_error"] <= X0_TARGET
    )
    return record


def summarize(records: list[dict]) -> list[dict]:
    """Per-d distribution rows: median, 90th percentile and worst of errors and wall time."""
    rows = []
    for d in sorted({r["d"] for r in records}):
        recs = [r for r in records if r["d"] == d]
        row = dict(kind="summary", d=d, games=len(recs))
        for name in ("value_error", "mean_error", "x0_error", "seconds"):
            values = np.array([r[name] for r in recs], float)
            row[name] = dict(
                median=float(np.median(values)),
                p90=float(np.percentile(values, 90)),
                worst=float(values.max()),
            )
        bad = [r for r in recs if max(r["value_error"], r["x0_error"]) > VALUE_TARGET]
        row["within_targets"] = sum(r["within_targets"] for r in recs)
        row["above_1e-2"] = len(bad)
        row["above_1e-2_flagged"] = sum(r["warned"] for r in bad)
        row["false_alarms"] = sum(r["warned"] for r in recs if r not in bad)
        rows.append(row)
    return rows


def plot(records: list[dict], path: Path) -> None:
    """True worst error against the indicator, one colour per d."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.5))
    for d in sorted({r["d"] for r in records}):
        recs = [r for r in records if r["d"] == d]
        true = [max(r["value_error"], r["x0_error"]) for r in recs]
        ax.scatter([r["indicator"] for r in recs], true, label=f"d = {d}", alpha=0.8)
    ax.set(xscale="log", yscale="log", xlabel="error indicator (no reference)",
           ylabel="true error: max(value L2, V(0, x0))",
           title="held-out family, default solve")  # fmt: skip
    ax.axhline(VALUE_TARGET, color="grey", lw=0.8, ls="--")
    ax.axvline(1e-2, color="grey", lw=0.8, ls=":")
    lims = [1e-7, 1e1]
    ax.plot(lims, lims, "k-", lw=0.5, label="indicator = error")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="CI slice: d in {2, 3}")
    parser.add_argument("--dims", type=int, nargs="+", default=[2, 10, 50, 100])
    parser.add_argument("--games", type=int, default=None,
                        help="games per d (default 16 for d <= 10, 8 above)")  # fmt: skip
    parser.add_argument("--out", type=Path, default=DEFAULT_RESULTS_DIR)
    args = parser.parse_args(argv)
    plan = ([(d, 0) for d in (2, 3)] if args.quick else
            [(d, j) for d in args.dims
             for j in range(args.games or (16 if d <= 10 else 8))])  # fmt: skip
    print(f"device: {device_string(device_label())}")
    print(f"start {timestamp()}: {len(plan)} games", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "robustness.json"
    path.write_text("")
    records = []
    for d, index in plan:
        record = run_game(index, d)
        records.append(record)
        write_jsonl(path, [record], append=True)
        print(f"d={d:3d} #{index:2d} m={record['m']} {record['concept']:11s} n={record['n']:3d} "
              f"T={record['T']:6.2f} rate={record['rate']:7.1f} |x0|={record['x0_norm']:5.2f}  "
              f"value {record['value_error']:.1e} mean {record['mean_error']:.1e} "
              f"x0 {record['x0_error']:.1e} indicator {record['indicator']:.1e}"
              f"{' WARNED' if record['warned'] else ''}  {record['seconds']:.0f} s",
              flush=True)  # fmt: skip
    summary = summarize(records)
    write_jsonl(path, summary, append=True)
    headers = ["d", "games", "in targets", "value med/p90/worst", "mean med/p90/worst",
               "V(0,x0) med/p90/worst", "seconds med/worst", ">1e-2 flagged",
               "false alarms"]  # fmt: skip
    fmt = lambda s: f"{s['median']:.1e} / {s['p90']:.1e} / {s['worst']:.1e}"  # noqa: E731
    rows = [[r["d"], r["games"], r["within_targets"], fmt(r["value_error"]),
             fmt(r["mean_error"]), fmt(r["x0_error"]),
             f"{r['seconds']['median']:.0f} / {r['seconds']['worst']:.0f}",
             f"{r['above_1e-2_flagged']}/{r['above_1e-2']}", r["false_alarms"]]
            for r in summary]  # fmt: skip
    print(format_table(headers, rows))
    plot(records, args.out / "robustness.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
