"""Benchmark of `stackjax.meanfield`: MFE solving against MFGLib, the exact Stackelberg oracle
on the toll game, AC-SMFG and its baselines (median over seeds, one vmapped run each).

Usage::

    python benchmarks/meanfield.py            # full run (10 seeds; economics games too)
    python benchmarks/meanfield.py --quick    # small run for CI

Prints three tables and writes ``results/meanfield.jsonl``.
"""

from __future__ import annotations

import argparse
import pathlib
import time

import jax
import numpy as np
from _common import block, device_label, device_string, format_table, timestamp, write_jsonl
from scipy import optimize, special

jax.config.update("jax_enable_x64", True)

import stackjax.meanfield as mf  # noqa: E402


def toll_reference(tau):
    """Toll optimum by SciPy: exact closed form at tau = 0, bracketing + bounded search else."""
    if tau == 0:
        return 0.5, 1 / 12

    def share(theta):
        f = lambda m: m - special.expit((1 - 3 * m - theta) / tau)  # noqa: E731
        return optimize.brentq(f, 0.0, 1.0, xtol=1e-15)

    res = optimize.minimize_scalar(
        lambda th: -th * share(th), bounds=(0.0, 2.0), method="bounded", options={"xatol": 1e-12}
    )
    return res.x, -res.fun


def bench_mfe(num_iterations, records):
    import mfglib.alg as alg
    import torch
    from mfglib.env import Environment

    torch.set_default_dtype(torch.float64)
    cases = [
        ("beach_bar", mf.beach_bar(), Environment.beach_bar()),
        ("linear_quadratic", mf.linear_quadratic(), Environment.linear_quadratic()),
    ]
    algorithms = [
        (
            "fixed_point",
            lambda g: mf.fixed_point(g, num_iterations=num_iterations),
            lambda: alg.FictitiousPlay(1.0),
        ),
        (
            "fictitious_play",
            lambda g: mf.fictitious_play(g, num_iterations=num_iterations),
            lambda: alg.FictitiousPlay(0.0),
        ),
        (
            "online_mirror_descent",
            lambda g: mf.online_mirror_descent(g, num_iterations=num_iterations),
            lambda: alg.OnlineMirrorDescent(1.0),
        ),
    ]
    rows = []
    for env_name, game, reference in cases:
        for name, ours, theirs in algorithms:
            fn = jax.jit(ours)
            t0 = time.perf_counter()
            block(fn(game))
            compile_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            sol = block(fn(game))
            ours_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            _, expls, _ = theirs().solve(reference, max_iter=num_iterations, atol=None, rtol=None)
            theirs_s = time.perf_counter() - t0
            diff = float(np.max(np.abs(np.asarray(sol.exploitability) - np.array(expls))))
            rec = dict(
                kind="mfe",
                env=env_name,
                algorithm=name,
                iterations=num_iterations,
                stackjax_it_per_s=num_iterations / ours_s,
                mfglib_it_per_s=num_iterations / theirs_s,
                speedup=theirs_s / ours_s,
                compile_s=compile_s,
                max_exploitability_difference=diff,
                final_exploitability=float(sol.exploitability[-1]),
            )
            records.append(rec)
            rows.append(
                [
                    env_name,
                    name,
                    f"{rec['stackjax_it_per_s']:.0f}",
                    f"{rec['mfglib_it_per_s']:.1f}",
                    f"{rec['speedup']:.0f}x",
                    f"{diff:.1e}",
                    f"{rec['final_exploitability']:.2e}",
                ]
            )
    print(
        format_table(
            [
                "env",
                "algorithm",
                "stackjax it/s",
                "MFGLib it/s",
                "ratio",
                "|expl diff|",
                "final expl",
            ],
            rows,
        )
    )


def bench_oracle(temperatures, records):
    rows = []
    for tau in temperatures:
        game = mf.left_right_toll(tau)
        t0 = time.perf_counter()
        res = block(mf.stackelberg_equilibrium(game, jax.random.key(0), num_restarts=2))
        wall = time.perf_counter() - t0
        theta_ref, value_ref = toll_reference(tau)
        rec = dict(
            kind="oracle",
            temperature=tau,
            theta=float(res.leader_params[0]),
            theta_error=abs(float(res.leader_params[0]) - theta_ref),
            value=float(res.leader_value),
            value_error=abs(float(res.leader_value) - value_ref),
            mu_right=float(res.population[1, 2]),
            exploitability=float(res.exploitability),
            wall_s=wall,
        )
        records.append(rec)
        rows.append(
            [
                tau,
                f"{rec['theta']:.8f}",
                f"{rec['theta_error']:.1e}",
                f"{rec['value']:.8f}",
                f"{rec['value_error']:.1e}",
                f"{rec['mu_right']:.6f}",
                f"{rec['exploitability']:.1e}",
                f"{wall:.1f}",
            ]
        )
    print(
        format_table(["tau", "theta*", "|err|", "revenue", "|err|", "mu_R", "expl", "wall s"], rows)
    )


def _first_below(gap, level, samples):
    """Samples after which the median gap stays below ``level`` (nan if never)."""
    below = gap < level
    stays = np.flip(np.cumprod(np.flip(below))).astype(bool)
    return float(samples[np.argmax(stays)]) if stays.any() else float("nan")


def bench_learners(num_updates, num_seeds, records, game=None, optimum=None, lr=0.1):
    """Every leader update on one Stackelberg game (default: the toll game at tau = 0.3)."""
    if game is None:
        game = mf.left_right_toll(0.3)
        _, optimum = toll_reference(0.3)
    tau = float(game.temperature)
    rows = []
    for kind in ("partial", "implicit", "independent", "exact", "nested"):
        config = mf.ACSMFGConfig(
            num_updates=num_updates,
            batch_size=64,
            leader_lr=lr,
            follower_lr=0.1,
            critic_lr=0.5,
            mean_field_lr=0.2,
            leader_gradient=kind,
        )
        train = jax.jit(jax.vmap(mf.make_train(game, config)))
        keys = jax.random.split(jax.random.key(0), num_seeds)
        t0 = time.perf_counter()
        block(train(keys))
        compile_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        _, metrics = block(train(keys))
        wall = time.perf_counter() - t0
        gap = np.median((optimum - np.asarray(metrics["leader_objective"])) / abs(optimum), axis=0)
        samples = np.asarray(metrics["samples"])[0]
        ratio = np.asarray(metrics["alignment_ratio"])
        rec = dict(
            kind="learner",
            env=game.name,
            optimum=optimum,
            method=kind,
            temperature=tau,
            seeds=num_seeds,
            updates=num_updates,
            final_gap=float(gap[-1]),
            samples_to_5pct=_first_below(gap, 0.05, samples),
            samples_to_1pct=_first_below(gap, 0.01, samples),
            wall_s=wall,
            compile_s=compile_s,
            alignment_ratio_start=float(np.median(ratio[:, 0])),
            alignment_ratio_median=float(np.median(ratio)),
            alignment_ratio_final=float(np.median(ratio[:, -1])),
            final_theta=float(np.median(np.asarray(metrics["leader_params"])[:, -1, 0])),
        )
        records.append(rec)
        rows.append(
            [
                kind,
                f"{rec['final_gap']:.2e}",
                f"{rec['final_theta']:.4f}",
                f"{rec['samples_to_5pct']:.0f}",
                f"{rec['samples_to_1pct']:.0f}",
                f"{wall:.1f}",
                f"{rec['alignment_ratio_start']:.3f}",
                f"{rec['alignment_ratio_median']:.3g}",
            ]
        )
    print(f"{game.name}, tau = {tau}, optimum {optimum:.8f}; median over {num_seeds} seeds")
    print(
        format_table(
            [
                "method",
                "final gap",
                "theta",
                "samples 5%",
                "samples 1%",
                "wall s",
                "align start",
                "align median",
            ],
            rows,
        )
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small run for CI")
    parser.add_argument(
        "--out", type=pathlib.Path, default=pathlib.Path(__file__).resolve().parent / "results"
    )
    args = parser.parse_args()
    label = device_label()
    print(device_string(label))
    records = []
    bench_mfe(10 if args.quick else 50, records)
    bench_oracle([0.0, 0.3] if args.quick else [0.0, 0.1, 0.3, 1.0], records)
    bench_learners(60 if args.quick else 600, 2 if args.quick else 10, records)
    if not args.quick:  # the economics games: exact optimum by the oracle, then every learner
        for game in (mf.market_entrance(), mf.equilibrium_pricing(), mf.shop_positioning()):
            res = block(
                mf.stackelberg_equilibrium(game, jax.random.key(0), num_restarts=2, num_steps=150)
            )
            records.append(
                dict(
                    kind="oracle",
                    env=game.name,
                    leader_params=np.asarray(res.leader_params).tolist(),
                    value=float(res.leader_value),
                    exploitability=float(res.exploitability),
                    gradient_norm=float(res.gradient_norm),
                )
            )
            print(
                f"{game.name}: oracle value {float(res.leader_value):.8f}, exploitability "
                f"{float(res.exploitability):.1e}, projected gradient "
                f"{float(res.gradient_norm):.1e}"
            )
            bench_learners(300, 10, records, game=game, optimum=float(res.leader_value))
    for rec in records:
        rec.update(device=label, timestamp=timestamp(), quick=args.quick)
    args.out.mkdir(parents=True, exist_ok=True)
    write_jsonl(args.out / "meanfield.jsonl", records)


if __name__ == "__main__":
    main()
