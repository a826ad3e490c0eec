"""Model-free learners (`stackjax.rl`) against the exact Riccati equilibrium.

Every learner sees only `stackjax.rl.sde_env(game, dt)` (trajectories and costs); the errors
are measured afterwards against `riccati_reference(game)` with `stackjax.evaluate` (relative L2
over t ~ U[0, T], x ~ N(x0, I), max over regimes) and at (0, x0).

Sections (each row: game, learner, samples = simulated environment steps, wall time):

* ``accuracy``: Stackelberg q-learning (paired common-random-number conditions, the default)
  and the trajectory-only variant (``counterfactual=False``) on scalar_game, cross_term_game and
  random_game(d = 5, m = 2), several batch sizes; errors after every round; samples and time to
  reach 5e-2 / 2e-2; least-squares slope of log(error) against log(samples).
* ``nash``: independent learners (``concept="nash"``) on the cross-term game, errors against
  the Nash and the Stackelberg equilibria.
* ``temperature``: (lambda_1, lambda_2) sweep on the cross-term game without extra exploration
  noise, plus lambda_1 = 0 with and without behaviour noise (can the leader learn?), and
  temperature annealing.
* ``throughput``: environment steps per second of the jitted learner vmapped over 64 seeds
  against a plain NumPy loop of the same rollout and normal-equation accumulation (scalar game).

Run ``python benchmarks/rl.py`` (full) or ``--quick`` (CI). Writes ``<out>/rl.json`` (JSON lines).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import jax
import numpy as np

jax.config.update("jax_enable_x64", True)

from _common import (  # noqa: E402
    DEFAULT_RESULTS_DIR,
    block,
    device_label,
    device_string,
    format_table,
    timestamp,
    write_jsonl,
)

import stackjax as sj  # noqa: E402
from stackjax import rl  # noqa: E402

GAMES = {
    "scalar": sj.examples.scalar_game,
    "cross-term": sj.examples.cross_term_game,
    "random-d5-m2": lambda lam=(0.1, 0.1): sj.examples.random_game(
        jax.random.key(0), d=5, m=2, lam=lam
    ),
}


def errors(result, ref) -> dict:
    """Worst-regime relative errors of the policy means and of V(0, x0) (both players)."""
    ev = sj.evaluate(result, ref, jax.random.key(123), num_points=512)
    return {
        "mean_leader": float(np.max(ev["mean_leader"])),
        "mean_follower": float(np.max(ev["mean_follower"])),
        "value_x0_leader": float(np.max(ev["value_at_x0"][0])),
        "value_x0_follower": float(np.max(ev["value_at_x0"][1])),
    }


def worst(err: dict) -> float:
    return max(err["mean_leader"], err["mean_follower"], err["value_x0_leader"])


def run_learner(env, config, key):
    """Compiles once, runs once; returns (per-round results, compile s, run s)."""
    train = rl.make_train(env, config)
    start = time.perf_counter()
    compiled = jax.jit(train).lower(key).compile()
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    state, metrics = block(compiled(key))
    run_s = time.perf_counter() - start
    base = rl.result_from(state, metrics, env, config)
    rounds = [
        base.replace(q_params=metrics["q_params"][r], value_params=metrics["value_params"][r])
        for r in range(config.num_iterations)
    ]
    return rounds, np.asarray(metrics["samples"]), compile_s, run_s


def accuracy_rows(game_name, env, ref, learner, config, key, label=None):
    rounds, samples, compile_s, run_s = run_learner(env, config, key)
    rows = []
    for r, res in enumerate(rounds):
        err = errors(res, ref)
        rows.append(
            {
                "section": "accuracy",
                "game": game_name,
                "learner": label or learner,
                "num_episodes": config.num_episodes,
                "round": r + 1,
                "samples": int(samples[r]),
                "seconds": run_s * (r + 1) / config.num_iterations,
                "compile_seconds": compile_s,
                **err,
                "worst": worst(err),
            }
        )
    return rows


def reach(rows, threshold):
    """(samples, seconds) of the first round whose worst error is below ``threshold``."""
    for row in sorted(rows, key=lambda r: r["samples"]):
        if row["worst"] <= threshold:
            return row["samples"], row["seconds"]
    return None, None


def slope(rows):
    """Least-squares slope of log(worst error) against log(samples) over the final rounds."""
    finals = {}
    for row in rows:
        if row["round"] == max(
            r["round"] for r in rows if r["num_episodes"] == row["num_episodes"]
        ):
            finals[row["samples"]] = row["worst"]
    if len(finals) < 2:
        return float("nan")
    s, e = np.log(list(finals)), np.log(list(finals.values()))
    return float(np.polyfit(s, e, 1)[0])


def numpy_throughput(num_episodes: int, dt: float) -> float:
    """Steps per second of a plain NumPy loop of one round (scalar game, zero-mean Gaussian
    behaviour policy): Euler-Maruyama step with exact switching clocks, the value and action
    features, and the accumulation of the normal equations (TD and paired conditions)."""
    game = sj.examples.scalar_game()
    g = {k: np.asarray(getattr(game, k)) for k in ("A", "B1", "B2", "b", "C", "s", "Gamma")}
    Q, R11, R12, R22, q, r2 = (
        np.asarray(getattr(game, k)) for k in ("Q", "R11", "R12", "R22", "q", "r2")
    )
    rng = np.random.default_rng(0)
    N = int(round(1.0 / dt))
    Kv, Kq, m = 5, 3, 2
    F = m * Kv * 3 + m * Kq * 5
    A_ne, b_ne = np.zeros((F, F)), np.zeros((F, 2))

    def leg(t, K):
        s = 2 * t - 1
        out = [1.0, s]
        for n in range(1, K - 1):
            out.append(((2 * n + 1) * s * out[n] - n * out[n - 1]) / (n + 1))
        return np.array(out[:K])

    def vfeat(t, x, i):
        f = np.zeros((m, Kv, 3))
        f[i] = np.outer(leg(t, Kv), [x * x, x, 1.0])
        return f.ravel()

    def qfeat(t, x, i, u):
        f = np.zeros((m, Kq, 5))
        base = [
            u[0] ** 2 - 0.25,
            2 * u[0] * u[1],
            u[1] ** 2 - 0.25,
            2 * u[0] * x,
            2 * u[0],
            2 * u[1] * x,
            2 * u[1],
        ][:5]
        f[i] = np.outer(leg(t, Kq), base)
        return f.ravel()

    def step(x, i, u, noise):
        drift = (
            g["A"][i, 0, 0] * x + g["B1"][i, 0, 0] * u[0] + g["B2"][i, 0, 0] * u[1] + g["b"][i, 0]
        )
        sig = g["C"][i, 0, 0, 0] * x + g["s"][i, 0, 0]
        cost = np.array(
            [
                Q[k, i, 0, 0] * x * x
                + R11[k, i, 0, 0] * u[0] ** 2
                + 2 * R12[k, i, 0, 0] * u[0] * u[1]
                + R22[k, i, 0, 0] * u[1] ** 2
                + 2 * q[k, i, 0] * x
                + 2 * r2[k, i, 0] * u[1]
                for k in range(2)
            ]
        )
        return x + drift * dt + sig * noise, cost * dt

    start = time.perf_counter()
    for _ in range(num_episodes):
        x, i = 1.0 + rng.normal(), int(rng.integers(2))
        clock = rng.exponential(1.0 / -g["Gamma"][i, i])
        for n in range(N):
            t = n * dt
            u, v = 0.5 * rng.normal(size=2), 0.5 * rng.normal(size=2)
            noise = np.sqrt(dt) * rng.normal()
            x_u, c_u = step(x, i, u, noise)
            x_v, c_v = step(x, i, v, noise)
            j = i
            if clock <= dt:
                j = 1 - i
                clock = rng.exponential(1.0 / -g["Gamma"][j, j])
            else:
                clock -= dt
            phi, nxt, nv = vfeat(t, x, i), vfeat(t + dt, x_u, j), vfeat(t + dt, x_v, j)
            qu, qv = qfeat(t, x, i, u), qfeat(t, x, i, v)
            test = np.concatenate([phi, qu])
            A_ne += np.outer(test, np.concatenate([nxt - phi, -dt * qu]))
            b_ne -= np.outer(test, c_u)
            dq = qu - qv
            pt = np.concatenate([np.zeros_like(phi), dq])
            A_ne += np.outer(pt, np.concatenate([(nxt - nv) / dt, -dq]))
            b_ne -= np.outer(pt, (c_u - c_v) / dt)
            x, i = x_u, j
    np.linalg.solve(A_ne + 1e-9 * np.eye(F), b_ne)
    seconds = time.perf_counter() - start
    return 2 * num_episodes * N / seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small run (CI)")
    parser.add_argument("--out", type=Path, default=DEFAULT_RESULTS_DIR)
    parser.add_argument(
        "--sections",
        default="accuracy,nash,temperature,throughput",
        help="comma-separated subset of accuracy,nash,temperature,throughput",
    )
    args = parser.parse_args(argv)
    sections = set(args.sections.split(","))
    quick = args.quick
    label = device_label()
    print(device_string(label))
    records = []
    key = jax.random.key(0)
    dt = 0.02 if quick else 0.01
    rounds = 2 if quick else 3
    batches = [200] if quick else [1000, 4000, 12000]
    game_names = ["scalar"] if quick else list(GAMES)

    # Accuracy: Stackelberg q-learning (paired conditions) and the trajectory-only variant.
    summary = []
    for name in game_names if "accuracy" in sections else []:
        game = GAMES[name]()
        ref = sj.riccati_reference(game, num_times=41)
        env = rl.sde_env(game, dt)
        variants = [("q-learning", True)] + (
            [] if quick else [("q-learning (trajectories only)", False)]
        )
        for learner, cf in variants:
            rows = []
            sizes = batches if cf else batches[1:2]
            if name == "random-d5-m2":
                sizes = sizes[:2]
            for B in sizes:
                config = rl.Config(num_iterations=rounds, num_episodes=B, counterfactual=cf)
                rows += accuracy_rows(name, env, ref, learner, config, key)
                print(f"  {name} {learner} B={B}: worst error {rows[-1]['worst']:.3g}", flush=True)
            records += rows
            s5, t5 = reach(rows, 5e-2)
            s2, t2 = reach(rows, 2e-2)
            best = min(rows, key=lambda r: r["worst"])
            summary.append(
                [
                    name,
                    learner,
                    f"{best['mean_leader']:.3g}",
                    f"{best['mean_follower']:.3g}",
                    f"{best['value_x0_leader']:.3g}",
                    s5 or "-",
                    f"{t5:.1f}" if t5 else "-",
                    s2 or "-",
                    f"{t2:.1f}" if t2 else "-",
                    f"{slope(rows):.2f}",
                ]
            )
    if summary:
        print(
            format_table(
                [
                    "game",
                    "learner",
                    "err mu1",
                    "err mu2",
                    "err V1(0,x0)",
                    "steps 5e-2",
                    "s 5e-2",
                    "steps 2e-2",
                    "s 2e-2",
                    "slope",
                ],
                summary,
            )
        )

    # Independent learners find Nash on the cross-term game.
    if not quick and "nash" in sections:
        game = GAMES["cross-term"]()
        env = rl.sde_env(game, dt)
        refs = {
            c: sj.riccati_reference(game, num_times=41, concept=c) for c in ("stackelberg", "nash")
        }
        nash_rows = []
        for concept in ("stackelberg", "nash"):
            config = rl.Config(num_iterations=rounds, num_episodes=4000, concept=concept)
            res, samples, _, run_s = run_learner(env, config, key)
            for target, ref in refs.items():
                err = errors(res[-1], ref)
                records.append(
                    {
                        "section": "nash",
                        "learner": concept,
                        "target": target,
                        "samples": int(samples[-1]),
                        "seconds": run_s,
                        **err,
                    }
                )
                nash_rows.append(
                    [
                        concept,
                        target,
                        f"{err['mean_leader']:.3g}",
                        f"{err['mean_follower']:.3g}",
                        f"{err['value_x0_leader']:.3g}",
                    ]
                )
        gap = errors(refs["nash"], refs["stackelberg"])
        nash_rows.append(
            [
                "(exact Nash)",
                "stackelberg",
                f"{gap['mean_leader']:.3g}",
                f"{gap['mean_follower']:.3g}",
                f"{gap['value_x0_leader']:.3g}",
            ]
        )
        print(format_table(["learner", "against", "err mu1", "err mu2", "err V1(0,x0)"], nash_rows))

    # Temperatures: the exact means do not depend on lambda (docs/math.md §7.5); only the data does.
    temps = [(0.02, 0.02), (0.2, 0.2), (1.0, 1.0)] if not quick else [(0.2, 0.2)]
    cases = [(lam, 0.0, 1.0) for lam in temps]
    if not quick:
        cases += [((0.0, 0.2), 0.0, 1.0), ((0.0, 0.2), 0.3, 1.0), ((1.0, 1.0), 0.0, 0.3)]
    temp_rows = []
    for lam, expl, decay in cases if "temperature" in sections else []:
        game = sj.examples.cross_term_game(lam=lam)
        ref = sj.riccati_reference(game, num_times=41)
        classical = sj.riccati_reference(sj.examples.cross_term_game(lam=(0.0, 0.0)), num_times=41)
        env = rl.sde_env(game, dt)
        config = rl.Config(
            num_iterations=rounds,
            num_episodes=batches[min(1, len(batches) - 1)],
            exploration=expl,
            temperature_decay=decay,
        )
        res, samples, _, run_s = run_learner(env, config, key)
        final = res[-1]
        if decay < 1.0:  # annealed: compare with the game at the final temperatures
            lam_final = tuple(float(v) for v in final.temperatures)
            ref = sj.riccati_reference(sj.examples.cross_term_game(lam=lam_final), num_times=41)
        err = errors(final, ref)
        err0 = errors(final, classical)
        metrics = final.metrics
        records.append(
            {
                "section": "temperature",
                "lam": lam,
                "exploration": expl,
                "temperature_decay": decay,
                "samples": int(samples[-1]),
                "seconds": run_s,
                "fallback": float(metrics["fallback"][-1]),
                **err,
                "classical_mean_leader": err0["mean_leader"],
                "classical_value_x0_leader": err0["value_x0_leader"],
            }
        )
        temp_rows.append(
            [
                str(lam),
                expl,
                decay,
                f"{err['mean_leader']:.3g}",
                f"{err['mean_follower']:.3g}",
                f"{err['value_x0_leader']:.3g}",
                f"{err0['value_x0_leader']:.3g}",
                f"{float(metrics['fallback'][-1]):.2f}",
            ]
        )
    if temp_rows:
        print(
            format_table(
                [
                    "lambda",
                    "expl",
                    "decay",
                    "err mu1",
                    "err mu2",
                    "err V1",
                    "err V1 vs lam=0",
                    "fallback",
                ],
                temp_rows,
            )
        )

    # Throughput: jitted learner vmapped over 64 seeds against a NumPy loop of the same round.
    if "throughput" in sections:
        records.append(throughput(key, dt, quick))

    for r in records:
        r.update({"benchmark": "rl", "quick": quick, "time": timestamp(), "device": label})
    path = write_jsonl(
        args.out / f"rl{'' if sections == ALL else '-' + '-'.join(sorted(sections))}.json", records
    )
    print(f"wrote {path}")


ALL = {"accuracy", "nash", "temperature", "throughput"}


def throughput(key, dt, quick):
    game = GAMES["scalar"]()
    env = rl.sde_env(game, dt)
    B = 16 if quick else 128
    config = rl.Config(num_iterations=1, num_episodes=B)
    train = jax.jit(jax.vmap(rl.make_train(env, config)))
    keys = jax.random.split(key, 64)
    start = time.perf_counter()
    block(train(keys))
    first = time.perf_counter() - start
    start = time.perf_counter()
    block(train(jax.random.split(jax.random.key(1), 64)))
    run_s = time.perf_counter() - start
    steps = 64 * B * env.num_steps * 2
    jax_rate = steps / run_s
    np_rate = numpy_throughput(2 if quick else 10, dt)
    print(
        format_table(
            ["jax steps/s (64 seeds)", "numpy steps/s", "speed-up"],
            [[f"{jax_rate:.3g}", f"{np_rate:.3g}", f"{jax_rate / np_rate:.0f}x"]],
        )
    )
    return {
        "section": "throughput",
        "jax_steps_per_s": jax_rate,
        "numpy_steps_per_s": np_rate,
        "speedup": jax_rate / np_rate,
        "compile_seconds": first - run_s,
        "seeds": 64,
        "episodes": B,
    }


if __name__ == "__main__":
    main()
