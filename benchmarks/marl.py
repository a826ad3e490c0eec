"""Benchmark: contextual-follower Stackelberg MARL on the 12 iterated 2x2 games, against the
inner-loop (Q-learning follower) design and independent PPO, in one jitted vmapped run each.

Every design trains all games x seeds in one compiled call (``jax.vmap`` over seeds and over
the games' payoffs). Success: the greedy leader's return reaches the exact restricted-class
Stackelberg value (`exact_stackelberg`, stationary follower) within 1e-6 after the last update;
samples to success: leader environment steps until it first did. Throughput: environment steps
per second of the whole contextual pipeline (pretraining + leader PPO) against a plain NumPy
loop of the same pipeline (same tabular policies, REINFORCE + PPO with Adam), timed for a few
iterations in the same run. Usage::

    python benchmarks/marl.py            # 12 games x 5 seeds, default configs
    python benchmarks/marl.py --quick    # 3 games x 2 seeds, small configs, no independent PPO
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from _common import device_label, format_table  # noqa: E402

from stackjax.marl import (  # noqa: E402
    GAME_NAMES,
    BaselineConfig,
    ContextualConfig,
    exact_stackelberg,
    iterated_matrix_game,
    make_train,
    make_train_independent,
    make_train_inner_loop,
)
from stackjax.marl._contextual import samples_to_success  # noqa: E402


def run_design(make, env, config, params, keys):
    """Compile and run ``make(env, config)`` over games x seeds; returns times and metrics."""
    train = make(env, config)
    batched = jax.jit(jax.vmap(jax.vmap(train, in_axes=(0, None)), in_axes=(None, 0)))
    t0 = time.perf_counter()
    compiled = batched.lower(keys, params).compile()
    compile_time = time.perf_counter() - t0
    t0 = time.perf_counter()
    _, metrics = compiled(keys, params)
    metrics = jax.block_until_ready(metrics)
    return compile_time, time.perf_counter() - t0, jax.tree.map(np.asarray, metrics)


def numpy_contextual(payoffs, offset, horizon, config, iterations, updates, rng):
    """Plain NumPy loop of the contextual pipeline; returns environment steps and seconds."""
    a_l = a_f = 2
    num_obs, q = 5, 5
    num_contexts = a_l**q

    def softmax(z):
        e = np.exp(z - z.max())
        return e / e.sum()

    class Adam:
        def __init__(self, shapes, lr):
            self.m = [np.zeros(s) for s in shapes]
            self.v = [np.zeros(s) for s in shapes]
            self.t, self.lr = 0, lr

        def step(self, params, grads):
            self.t += 1
            for p, g, m, v in zip(params, grads, self.m, self.v, strict=True):
                m[:] = 0.9 * m + 0.1 * g
                v[:] = 0.999 * v + 0.001 * g * g
                mh, vh = m / (1 - 0.9**self.t), v / (1 - 0.999**self.t)
                p -= self.lr * mh / (np.sqrt(vh) + 1e-8)

    steps = 0
    t0 = time.perf_counter()
    logits = np.zeros((num_contexts, num_obs, a_f))
    baseline = np.zeros((num_contexts, horizon, num_obs))
    adam = Adam([logits.shape, baseline.shape], config.pretrain_learning_rate)
    for it in range(iterations):
        g_logits, g_base = np.zeros_like(logits), np.zeros_like(baseline)
        ent = config.pretrain_ent_coef * (1 - it / config.pretrain_iterations)
        n = config.pretrain_batch * horizon
        for _ in range(config.pretrain_batch):
            leader = rng.integers(0, a_l, num_obs)
            c = int(leader @ (2 ** np.arange(q)))
            last, traj = 0, []
            for t in range(horizon):
                a = leader[last]
                p = softmax(logits[c, last])
                b = rng.choice(a_f, p=p)
                traj.append((t, last, b, payoffs[a, b, 1] + offset, p))
                last = 1 + a + 2 * b
                steps += 1
            ret = 0.0
            for t, o, b, r, p in reversed(traj):
                ret += r
                adv = ret - baseline[c, t, o]
                g_logits[c, o] -= adv * (np.eye(a_f)[b] - p) / n
                logp = np.log(p)
                h = -(p * logp).sum()
                g_logits[c, o] += ent * p * (logp + h) / n
                g_base[c, t, o] += (baseline[c, t, o] - ret) / n
        adam.step([logits, baseline], [g_logits, g_base])
    # Leader PPO against the frozen greedy follower: query phase, then play.
    lead = np.zeros((num_obs, a_l))
    value = np.zeros((q + horizon, num_obs))
    adam = Adam([lead.shape, value.shape], config.learning_rate)
    for _ in range(updates):
        batch = []
        for _ in range(config.num_envs):
            answers, last, episode = [], 0, []
            for k in range(q + horizon):
                o = k if k < q else last
                p = softmax(lead[o])
                a = rng.choice(a_l, p=p)
                r = 0.0
                if k < q:
                    answers.append(a)
                else:
                    c = int(np.asarray(answers) @ (2 ** np.arange(q)))
                    b = int(np.argmax(logits[c, last]))
                    r = payoffs[a, b, 0] + offset
                    last = 1 + a + 2 * b
                episode.append((k, o, a, np.log(p[a]), value[k, o], r))
                steps += 1
            gae, nxt = 0.0, 0.0
            for k, o, a, lp, v, r in reversed(episode):
                gae = r + config.gamma * nxt - v + config.gamma * config.gae_lambda * gae
                nxt = v
                batch.append((k, o, a, lp, gae, gae + v))
        adv = np.array([x[4] for x in batch])
        norm = (adv - adv.mean()) / (adv.std() + 1e-8)
        for _ in range(config.update_epochs):
            g_lead, g_val = np.zeros_like(lead), np.zeros_like(value)
            for (k, o, a, lp, _, target), na in zip(batch, norm, strict=True):
                p = softmax(lead[o])
                ratio = np.exp(np.log(p[a]) - lp)
                if (na >= 0 and ratio < 1 + config.clip_eps) or (
                    na < 0 and ratio > 1 - config.clip_eps
                ):
                    g_lead[o] -= na * ratio * (np.eye(a_l)[a] - p) / len(batch)
                g_val[k, o] += config.vf_coef * (value[k, o] - target) / len(batch)
            adam.step([lead, value], [g_lead, g_val])
    return steps, time.perf_counter() - t0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small run (CI)")
    parser.add_argument("--seeds", type=int, default=None)
    parser.add_argument("--inner-updates", type=int, default=None)
    parser.add_argument(
        "--out", type=pathlib.Path, default=pathlib.Path(__file__).resolve().parent / "results",
        help="results directory",
    )  # fmt: skip
    args = parser.parse_args(argv)
    games = ("prisoners_dilemma", "hero", "deadlock") if args.quick else GAME_NAMES
    seeds = args.seeds or (2 if args.quick else 5)
    if args.quick:
        contextual = ContextualConfig(num_updates=25, num_envs=16)
        baseline = BaselineConfig(num_updates=args.inner_updates or 4, num_q_episodes=20)
    else:
        contextual = ContextualConfig()
        baseline = BaselineConfig(num_updates=args.inner_updates or 100)
    independent = BaselineConfig(num_updates=contextual.num_updates)
    envs = [iterated_matrix_game(name) for name in games]
    params = jax.tree.map(lambda *x: jnp.stack(x), *[env.params for env in envs])
    targets = np.array([float(exact_stackelberg(env).leader_return) for env in envs])
    keys = jax.random.split(jax.random.key(0), seeds)

    t_start = time.perf_counter()
    results, curves = {}, {}
    designs = [
        ("contextual", make_train, contextual),
        ("inner_loop", make_train_inner_loop, baseline),
        ("independent", make_train_independent, independent),
    ]
    if args.quick:  # CI: the two Stackelberg designs only (each design is one compile)
        designs = designs[:2]
    for design, make, config in designs:
        compile_time, run_time, metrics = run_design(make, envs[0], config, params, keys)
        final = metrics["leader_return"][..., -1]  # [games, seeds]
        success = final >= targets[:, None] - 1e-6
        to_success = np.asarray(samples_to_success(metrics, jnp.asarray(targets)[:, None]))
        results[design] = {
            "compile_seconds": compile_time,
            "run_seconds": run_time,
            "final_leader_return": final.tolist(),
            "success": success.tolist(),
            "samples_to_success": to_success.tolist(),
            "samples_per_run": int(metrics["samples"][0, 0, -1]),
        }
        curves[design] = {
            g: (metrics["samples"][i, 0], metrics["leader_return"][i]) for i, g in enumerate(games)
        }

    runs = len(games) * seeds
    pre_steps = contextual.pretrain_iterations * contextual.pretrain_batch * 10
    lead_steps = results["contextual"]["samples_per_run"]
    contextual_steps = runs * (pre_steps + lead_steps)
    jax_rate = contextual_steps / results["contextual"]["run_seconds"]
    inner_steps = runs * baseline.num_updates * (baseline.num_envs + baseline.num_eval_episodes)
    inner_steps *= (baseline.num_q_episodes + 1) * 10
    inner_rate = inner_steps / results["inner_loop"]["run_seconds"]
    np_iterations, np_updates = (2, 2) if args.quick else (10, 5)
    np_steps, np_seconds = numpy_contextual(
        np.asarray(envs[0].params.payoffs), -2.5, 10, contextual, np_iterations, np_updates,
        np.random.default_rng(0),
    )  # fmt: skip
    numpy_rate = np_steps / np_seconds
    wall = time.perf_counter() - t_start

    def median_samples(design, i):
        s = np.asarray(results[design]["samples_to_success"][i])
        s = s[s >= 0]
        return f"{int(np.median(s)):,}" if s.size else "-"

    def rate(design, i=None):
        if design not in results:
            return "-"
        success = np.asarray(results[design]["success"])
        return f"{(success if i is None else success[i]).mean():.0%}"

    headers = ["game", "exact", "contextual", "samples", "inner loop", "samples", "indep. PPO"]
    rows = []
    for i, game in enumerate(games):
        rows.append(
            [
                game,
                f"{targets[i]:g}",
                rate("contextual", i),
                median_samples("contextual", i),
                rate("inner_loop", i),
                median_samples("inner_loop", i),
                rate("independent", i),
            ]
        )
    rows.append(
        [
            "all",
            "",
            rate("contextual"),
            "",
            rate("inner_loop"),
            "",
            rate("independent"),
        ]
    )
    print(format_table(headers, rows))
    print(
        f"leader samples per run: contextual {lead_steps:,} (+ {pre_steps:,} follower "
        f"pretraining steps), inner loop {results['inner_loop']['samples_per_run']:,}"
    )
    for design, rec in results.items():
        print(
            f"{design}: compile {rec['compile_seconds']:.1f} s, run {rec['run_seconds']:.1f} s "
            f"({len(games)} games x {seeds} seeds in one call)"
        )
    print(
        f"throughput (env steps/s): contextual jax {jax_rate:,.0f}, inner loop jax "
        f"{inner_rate:,.0f}, contextual numpy loop {numpy_rate:,.0f} "
        f"(speedup {jax_rate / numpy_rate:,.0f}x)"
    )
    print(f"benchmark wall time: {wall:.1f} s")

    record = {
        "games": list(games),
        "seeds": seeds,
        "targets": targets.tolist(),
        "designs": results,
        "contextual_config": {k: v for k, v in vars(contextual).items()},
        "baseline_config": {k: v for k, v in vars(baseline).items()},
        "contextual_steps_per_second": jax_rate,
        "inner_loop_steps_per_second": inner_rate,
        "numpy_steps_per_second": numpy_rate,
        "numpy_steps_timed": np_steps,
        "speedup": jax_rate / numpy_rate,
        "wall_seconds": wall,
        "device": device_label(),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "marl.json"
    path.write_text(json.dumps(record, indent=2, default=str))
    from stackjax.marl.plotting import plot_sample_efficiency

    shown = [g for g in ("prisoners_dilemma", "chicken", "hero", "stag_hunt") if g in games]
    plot_sample_efficiency(
        {d: {g: curves[d][g] for g in shown} for d in ("contextual", "inner_loop")},
        {g: targets[games.index(g)] for g in shown},
        args.out / "marl.png",
        title="greedy leader return vs leader samples (median, min-max over seeds)",
    )
    print(f"wrote {path} and {args.out / 'marl.png'}")
    return record


if __name__ == "__main__":
    main()
