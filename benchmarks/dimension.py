"""Neural solver cost against the state dimension d, per second-order operator mode.

For `stackjax.examples.random_game(key, d=d, m=m, noise_dim=n)` (leader/follower controls
2 + 2, uncontrolled diffusion) and each second-order mode of the solver
(``OperatorConfig.method``):

* ``hessian``: the reference, ``jax.hessian`` per point, then contracted with the columns;
* ``hvp``: the default exact operator (`stackjax._operators.gradient_and_products`);
* ``hutchinson``: the stochastic sketch with ``--probes`` Rademacher probes,

it measures, with the training step of `stackjax.make_train_step` jitted:

* compile time (``jit(...).lower(...).compile()``),
* median step time over interleaved repetitions (the three modes of one ``(d, m)`` case are
  run round-robin, so machine load hits them alike), collocation points per second,
* peak memory as XLA reports it for the compiled step (``compiled.memory_analysis()``:
  temporaries + arguments + outputs; not the process RSS),
* the cost of one residual evaluation (all players and regimes, same batch) divided by one
  forward pass of the value networks (both measured here, interleaved),
* the step's FLOPs (``compiled.cost_analysis()``) divided by its time, as a fraction of a
  ``[S x S] @ [S x S]`` matrix product's FLOP rate measured in the same rounds.

Infeasible cases are skipped with a recorded reason (the noise matrices ``C [m, n, d, d]`` of
the game, the ``d x d`` Hessians of the reference mode, or XLA's memory estimate above
``--max-gb``). The noise dimension is ``n = min(d, --noise)`` (default 8) for the sweep; with
``--full-noise-dims`` the listed ``d`` are also run with ``n = d`` (random_game's default).
An extra case (``--flops-case``) runs the default mode at batch 4096, d = 100, for the FLOP
rate goal. Another (``--correction-case``) runs ``hvp`` and ``hessian`` at d = 100 with the
network of non-LQ games (quadratic head + MLP correction, ``NetworkConfig(correction=True)``):
with the quadratic head alone the Hessian is constant in ``x`` and shared by the states of
one time, and ``vmap`` hoists the reference's per-state ``jax.hessian`` work the same way,
so the two operators cost about the same there; the MLP's Hessian is what second-order
operators exist for. Each record also holds ``game_s``, the time of the game's own
coefficients (drift, costs, diffusion columns) at the batch's states. The last
(``--gauss-newton-case``) times one Levenberg-Marquardt iteration of `solve`'s refinement at
``GaussNewtonConfig.batch_size`` 4096, d = 100, and its ``J^T J v`` product: for `LQGame`s
`solve` runs only these iterations, so this is the training step of the default solve (its
FLOPs: the iteration compiled with the CG loop unrolled, since XLA's cost analysis counts a
loop body once).

Run: ``python benchmarks/dimension.py`` (full grid, ~30-40 min on 2 loaded CPU cores) or
``python benchmarks/dimension.py --quick`` (d = 4, m = 1, batch 64; ~1 min at load 1).
Writes ``<out>/dimension.json`` (JSON lines, appended case by case) and
``<out>/dimension.png``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.flatten_util
import jax.numpy as jnp

import stackjax as sj
from stackjax import (
    AdamConfig,
    GaussNewtonConfig,
    NetworkConfig,
    OperatorConfig,
    SolverConfig,
    make_train_step,
    network_value,
    resolve_config,
)
from stackjax._solver._gauss_newton import linearized_residuals, refine
from stackjax._solver._step import sample_batch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    DEFAULT_RESULTS_DIR,
    device_label,
    device_string,
    format_table,
    median,
    timestamp,
    write_jsonl,
)

MODES = ("hessian", "hvp", "hutchinson")
CONTROLS = (2, 2)


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:  # pragma: no cover
        return "uptime unavailable"


def _flops(compiled) -> float:
    cost = compiled.cost_analysis()
    if isinstance(cost, list | tuple):
        cost = cost[0] if cost else {}
    return float((cost or {}).get("flops", float("nan")))


def _memory_bytes(compiled) -> dict:
    mem = compiled.memory_analysis()
    if mem is None:
        return {}
    out = {
        k: int(getattr(mem, f"{k}_size_in_bytes", 0))
        for k in ("temp", "argument", "output", "alias")
    }
    out["peak"] = out["temp"] + out["argument"] + out["output"] - out["alias"]
    return out


def _timed(fn, *args):
    start = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    return time.perf_counter() - start, out


def _skip_reason(mode, d, m, n, batch, bytes_per_float, max_gb) -> str | None:
    noise_gb = m * n * d * d * 8 / 1e9  # random_game draws C [m, n, d, d] in float64 numpy
    if noise_gb > max_gb:
        return f"game noise matrices C [m, n, d, d] need {noise_gb:.1f} GB > --max-gb {max_gb}"
    if mode == "hessian":
        hess_gb = batch * m * 2 * d * d * bytes_per_float / 1e9
        if hess_gb > 0.25 * max_gb:
            return (
                f"reference Hessians [batch, m, 2, d, d] need {hess_gb:.1f} GB "
                f"(> --max-gb / 4) and d HVPs per point"
            )
    return None


def _forward_guard(game, batch, limit_s, correction=None):
    """``(skip reason or None, jitted forward pass)`` of the (untrained) value networks.

    The forward pass uses the solver's batch layout and head form, like the residual it is
    compared with: ``points_per_time`` states per sampled time share the quadratic head's
    coefficients (`ValueModel.time_coefficients`, or `ValueModel.factored_coefficients` when
    the default ``head_form`` is ``"factored"``). It takes flat ``(t [N], x [N, d])`` with
    ``t`` repeated within each group of states.
    """
    config = SolverConfig(
        adam=AdamConfig(batch_size=batch), network=NetworkConfig(correction=correction)
    )
    config = resolve_config(game, config)
    factored = config.network.head_form == "factored"
    init, _ = make_train_step(game, config)
    state = init(jax.random.key(1))
    t, x, _ = sample_batch(game, config, jax.random.key(3), jax.random.key(4), batch)
    per = x.shape[1]
    t, x = jnp.repeat(t, per), x.reshape(batch, -1)
    model = network_value(game, config, state.params, state.norm).model
    regimes = jnp.arange(game.num_regimes)

    def forward(params, norm, t, x):
        t = t[::per]
        coefs = model.factored_coefficients(params, norm, t)[0] if factored else None

        def group(ti, xs, ci):
            def regime(p_i, i, c):
                c = model.time_coefficients(p_i, norm, ti) if c is None else c
                return jax.vmap(lambda xi: model.regime_value_at(p_i, norm, game, i, ti, xi, c))(xs)

            return jax.vmap(regime)(params, regimes, ci)  # [m, P, p]

        return jax.vmap(group)(t, x.reshape(-1, per, x.shape[-1]), coefs)

    forward = jax.jit(forward)
    _timed(forward, state.params, state.norm, t, x)
    dt, _ = _timed(forward, state.params, state.norm, t, x)
    if dt > limit_s:
        basis = (game.state_dim + 1) * (game.state_dim + 2) // 2
        return (
            f"forward pass alone {dt:.1f} s > --max-forward-s {limit_s} (quadratic head: "
            f"{basis} basis functions x time basis x 2 players per regime and point)"
        ), forward
    return None, forward


def run_case(d, m, n, batch, args, matmul):
    """All modes of one ``(d, m, n, batch)`` case, interleaved. Returns a list of records.

    ``args.correction``: ``None`` (the solver's default network for the game: the quadratic
    head alone for an `LQGame`) or ``True`` (quadratic head + MLP correction, the network of
    non-LQ games, whose Hessian depends on ``x``).
    """
    key = jax.random.key(args.seed)
    dtype_bytes = 8 if jax.config.read("jax_enable_x64") else 4
    network = "quadratic+mlp" if args.correction else "quadratic"
    base = {"d": d, "m": m, "n": n, "batch": batch, "controls": list(CONTROLS), "network": network}
    records, live = [], {}
    modes = args.modes
    game, forward_reason = None, None
    for mode in modes:
        reason = _skip_reason(mode, d, m, n, batch, dtype_bytes, args.max_gb) or forward_reason
        rec = dict(base, mode=mode, probes=args.probes if mode == "hutchinson" else None)
        if reason is None and game is None:
            game = sj.examples.random_game(key, d=d, m=m, noise_dim=n)
            forward_reason, forward = _forward_guard(
                game, batch, args.max_forward_s, args.correction
            )
            reason = forward_reason
        if reason is None:
            config = SolverConfig(
                adam=AdamConfig(batch_size=batch),
                operator=OperatorConfig(method=mode, num_probes=args.probes),
                network=NetworkConfig(correction=args.correction),
            )
            config = resolve_config(game, config)
            rec["head_form"] = config.network.head_form
            init, step = make_train_step(game, config)
            state = init(jax.random.key(1))
            step_key = jax.random.key(2)
            tic = time.perf_counter()
            compiled = jax.jit(step).lower(state, step_key).compile()
            rec["compile_s"] = time.perf_counter() - tic
            rec["memory_bytes"] = _memory_bytes(compiled)
            rec["flops"] = _flops(compiled)
            peak_gb = rec["memory_bytes"].get("peak", 0) / 1e9
            if peak_gb > args.max_gb:
                reason = f"XLA memory estimate {peak_gb:.1f} GB > --max-gb {args.max_gb}"
        if reason is not None:
            rec["skipped"] = reason
            records.append(rec)
            continue
        # Residual (all players, regimes) vs forward pass of the value networks, same batch.
        # The solver's own batch layout: `points_per_time` states per sampled time (flattened
        # here for the forward pass; regrouped for the residual).
        t, x, keys = sample_batch(game, config, jax.random.key(3), jax.random.key(4), batch)
        per = x.shape[1]
        t, x, keys = jnp.repeat(t, per), x.reshape(batch, -1), keys.reshape(batch)

        def residual(p, nrm, t, x, k, cfg=config, per=per):
            net = network_value(game, cfg, p, nrm)
            return net.batch_residuals(
                t[::per], x.reshape(-1, per, x.shape[-1]), k.reshape(-1, per)
            )

        residual = jax.jit(residual)
        game_fn = jax.jit(
            jax.vmap(jax.vmap(game.coefficients, (None, 0)), (0, None)),
        )  # the game's own per-point work: [N, m] coefficients
        _timed(game_fn, x, jnp.arange(m))
        first, _ = _timed(compiled, state, step_key)
        _timed(residual, state.params, state.norm, t, x, keys)
        _timed(forward, state.params, state.norm, t, x)
        rec["first_step_s"] = first
        live[mode] = dict(
            compiled=compiled, state=state, key=step_key, residual=residual, forward=forward,
            args=(state.params, state.norm, t, x), keys=keys, game=game_fn,
            times={"step": [], "residual": [], "forward": [], "game": []},
        )  # fmt: skip
        records.append(rec)

    # Cross-check on the same batch: each mode's residuals against the jax.hessian reference
    # (exact modes agree to round-off; the Hutchinson sketch is unbiased, not equal).
    # Random (not zero-initialised) head coefficients, so the networks' Hessians enter.
    if "hessian" in live:

        def check(c):
            params, norm, t, x = c["args"]
            leaves, tree = jax.tree.flatten(params)
            keys = jax.random.split(jax.random.key(5), len(leaves))
            noisy = [p + 0.1 * jax.random.normal(k, p.shape, p.dtype) for p, k in zip(leaves, keys)]
            return jax.device_get(c["residual"](tree.unflatten(noisy), norm, t, x, c["keys"]))

        ref = check(live["hessian"])
        for rec in records:
            if rec["mode"] in live:
                r = check(live[rec["mode"]])
                rec["residual_rel_diff_vs_hessian"] = float(
                    jnp.max(jnp.abs(r - ref)) / jnp.max(jnp.abs(ref))
                )

    matmul_times = []
    case_start = time.perf_counter()
    for rep in range(args.reps):
        for c in live.values():
            dt, out = _timed(c["compiled"], c["state"], c["key"])
            c["state"] = out[0]
            c["times"]["step"].append(dt)
            dt, _ = _timed(c["residual"], *c["args"], c["keys"])
            c["times"]["residual"].append(dt)
            dt, _ = _timed(c["forward"], *c["args"])
            c["times"]["forward"].append(dt)
            dt, _ = _timed(c["game"], c["args"][3], jnp.arange(m))
            c["times"]["game"].append(dt)
        dt, _ = _timed(matmul["fn"], matmul["a"], matmul["b"])
        matmul_times.append(dt)
        if rep >= 1 and time.perf_counter() - case_start > args.budget:
            break
    matmul_rate = matmul["flops"] / median(matmul_times)
    for rec in records:
        rec["matmul_flop_rate"] = matmul_rate
        rec["matmul_size"] = matmul["size"]
        if rec["mode"] not in live:
            continue
        c = live[rec["mode"]]
        step_s = median(c["times"]["step"])
        rec.update(
            step_s=step_s,
            step_times_s=c["times"]["step"],
            repetitions=len(c["times"]["step"]),
            points_per_s=batch / step_s,
            residual_s=median(c["times"]["residual"]),
            forward_s=median(c["times"]["forward"]),
            residual_over_forward=median(c["times"]["residual"]) / median(c["times"]["forward"]),
            game_s=median(c["times"]["game"]),
            flop_rate=rec["flops"] / step_s,
            flop_fraction=rec["flops"] / step_s / matmul_rate,
        )
    return records


def run_gauss_newton_case(d, m, n, batch, args, matmul):
    """One Levenberg-Marquardt iteration of `solve`'s default refinement (`refine`) at
    ``GaussNewtonConfig.batch_size = batch``, and its inner matrix-vector product ``J^T J v``.

    For `LQGame`s `solve` runs these iterations only (no Adam steps), so this is the training
    step users get by default. XLA's cost analysis counts a loop body once, not once per
    trip, so the iteration's FLOPs are counted on the same iteration with the conjugate-
    gradient loop unrolled (``refine(..., cg_unroll=cg_iterations)``: the same arithmetic in
    one loop body), which is also timed; ``flops_estimate`` is the cross-check "iteration
    with one CG step plus ``cg_iterations - 1`` standalone products". Times are medians over
    ``--reps`` rounds interleaved with the matmul.
    """
    game = sj.examples.random_game(jax.random.key(args.seed), d=d, m=m, noise_dim=n)
    config = resolve_config(
        game,
        SolverConfig(
            adam=AdamConfig(batch_size=batch),
            # (--quick: 4 CG steps, the unrolled compile is short)
            gauss_newton=GaussNewtonConfig(
                batch_size=batch, cg_iterations=4 if args.quick else None
            ),
        ),
    )
    cg_iterations = config.gauss_newton.cg_iterations
    init, _ = make_train_step(game, config)
    state = init(jax.random.key(1))
    network = network_value(game, config, state.params, state.norm)
    controlled = network.controlled
    key = jax.random.key(2)
    rec = {
        "kind": "gauss_newton", "d": d, "m": m, "n": n, "batch": batch, "network": "quadratic",
        "mode": config.operator.method, "head_form": config.network.head_form,
        "points_per_time": config.layout.points_per_time, "cg_iterations": cg_iterations,
    }  # fmt: skip

    def iteration(cfg, unroll=1):
        fn = lambda s, k: refine(  # noqa: E731
            game, s, k, config=cfg, controlled=controlled, num=1, cg_unroll=unroll
        )  # fmt: skip
        return jax.jit(fn)

    tic = time.perf_counter()
    compiled = iteration(config).lower(state, key).compile()
    rec["compile_s"] = time.perf_counter() - tic
    rec["memory_bytes"] = _memory_bytes(compiled)
    tic = time.perf_counter()
    unrolled = iteration(config, cg_iterations).lower(state, key).compile()
    rec["unrolled_compile_s"] = time.perf_counter() - tic
    one_step = config.replace(gauss_newton=config.gauss_newton.replace(cg_iterations=1))
    one_cg = iteration(one_step).lower(state, key).compile()

    flat, unravel = jax.flatten_util.ravel_pytree(state.params)
    t, x, keys = sample_batch(game, config, jax.random.key(3), jax.random.key(4), batch)

    _, jvp_fn, vjp_fn = linearized_residuals(network, unravel, flat, t, x, keys)
    v = jax.random.normal(jax.random.key(5), flat.shape, flat.dtype)
    matvec = jax.jit(lambda v: vjp_fn(jvp_fn(v))).lower(v).compile()
    rec["matvec_flops"] = _flops(matvec)
    rec["flops"] = _flops(unrolled)
    rec["flops_estimate"] = _flops(one_cg) + (cg_iterations - 1) * rec["matvec_flops"]
    rec["num_parameters"] = int(flat.size)
    _timed(compiled, state, key)
    _timed(unrolled, state, key)
    _timed(matvec, v)
    times = {"step": [], "unrolled": [], "matvec": [], "matmul": []}
    start = time.perf_counter()
    for rep in range(args.reps):
        times["step"].append(_timed(compiled, state, key)[0])
        times["unrolled"].append(_timed(unrolled, state, key)[0])
        times["matvec"].append(_timed(matvec, v)[0])
        times["matmul"].append(_timed(matmul["fn"], matmul["a"], matmul["b"])[0])
        if rep >= 1 and time.perf_counter() - start > args.budget:
            break
    rate = matmul["flops"] / median(times["matmul"])
    rec.update(
        step_s=median(times["step"]), unrolled_s=median(times["unrolled"]),
        matvec_s=median(times["matvec"]),
        step_times_s=times["step"], repetitions=len(times["step"]),
        matmul_flop_rate=rate, matmul_size=matmul["size"],
    )  # fmt: skip
    rec["flop_rate"] = rec["flops"] / rec["step_s"]
    rec["flop_fraction"] = rec["flop_rate"] / rate
    rec["unrolled_flop_fraction"] = rec["flops"] / rec["unrolled_s"] / rate
    rec["matvec_flop_fraction"] = rec["matvec_flops"] / rec["matvec_s"] / rate
    return [rec]


def gauss_newton_table(records) -> str:
    rows = [
        [r["d"], r["m"], r["n"], r["batch"], r["points_per_time"], r["cg_iterations"],
         f"{r['compile_s']:.1f}", f"{1e3 * r['step_s']:.4g}", f"{r['flops'] / 1e9:.3g}",
         f"{r['flops_estimate'] / r['flops']:.3f}", f"{100 * r['flop_fraction']:.1f}",
         f"{1e3 * r['unrolled_s']:.4g}", f"{100 * r['unrolled_flop_fraction']:.1f}",
         f"{1e3 * r['matvec_s']:.4g}", f"{100 * r['matvec_flop_fraction']:.1f}"]
        for r in records if r.get("kind") == "gauss_newton" and "step_s" in r
    ]  # fmt: skip
    headers = ["d", "m", "n", "batch", "P/time", "CG", "comp s", "iter ms", "GFLOP",
               "est/GFLOP", "%matmul", "unrolled ms", "unr %matmul", "matvec ms",
               "mv %matmul"]  # fmt: skip
    return format_table(headers, rows)


def make_matmul(size, dtype):
    a = jax.random.normal(jax.random.key(10), (size, size), dtype)
    b = jax.random.normal(jax.random.key(11), (size, size), dtype)
    fn = jax.jit(jnp.matmul)
    jax.block_until_ready(fn(a, b))
    return {"fn": fn, "a": a, "b": b, "flops": 2.0 * size**3, "size": size}


HEADERS = [
    "d", "m", "n", "batch", "net", "mode", "comp s", "step ms", "pts/s", "mem MB", "res/fwd",
    "GFLOP/s", "%matmul", "rdiff", "note",
]  # fmt: skip


def _net(r):
    """Network (q: quadratic head, +mlp: with the correction), ``/f``: factored head form."""
    net = "q+mlp" if r.get("network") == "quadratic+mlp" else "q"
    return net + ("/f" if r.get("head_form") == "factored" else "")


def row(r):
    if "skipped" in r:
        return (
            [r["d"], r["m"], r["n"], r["batch"], _net(r), r["mode"]]
            + ["-"] * 8
            + [r["skipped"][:50]]
        )
    return [
        r["d"], r["m"], r["n"], r["batch"], _net(r), r["mode"], f"{r['compile_s']:.1f}",
        f"{1e3 * r['step_s']:.4g}", f"{r['points_per_s']:.4g}",
        f"{r['memory_bytes'].get('peak', 0) / 1e6:.4g}", f"{r['residual_over_forward']:.1f}",
        f"{r['flop_rate'] / 1e9:.3g}", f"{100 * r['flop_fraction']:.1f}",
        f"{r['residual_rel_diff_vs_hessian']:.1e}" if "residual_rel_diff_vs_hessian" in r else "-",
        "",
    ]  # fmt: skip


def plot(records, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.8))
    styles = {"hessian": "s--", "hvp": "o-", "hutchinson": "^:"}
    sweep = [r for r in records if "step_s" in r and r.get("sweep")]  # default network only
    for m in sorted({r["m"] for r in sweep}):
        for mode in MODES:
            rs = sorted(
                (r for r in sweep if r["m"] == m and r["mode"] == mode), key=lambda r: r["d"]
            )
            if rs:
                ax.plot([r["d"] for r in rs], [r["step_s"] for r in rs], styles[mode],
                        label=f"{mode}, m={m}")  # fmt: skip
    full = [r for r in records if "step_s" in r and r["n"] == r["d"] and not r.get("sweep")
            and r.get("network") != "quadratic+mlp"]  # fmt: skip
    for r in full:
        ax.plot(r["d"], r["step_s"], "kx")
    if full:
        ax.plot([], [], "kx", label="n = d cases")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("state dimension d")
    ax.set_ylabel("median training step time [s]")
    batch = sweep[0]["batch"] if sweep else "?"
    ax.set_title(f"stackjax solver step vs d (batch {batch}, n = min(d, noise))")
    ax.legend(fontsize=7)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def goals(records):
    """Lines of the three dimension goals with the measured values."""
    ok = {(r["d"], r["m"], r["n"], r["batch"], r.get("network"), r["mode"]): r
          for r in records if "step_s" in r and r.get("kind") != "gauss_newton"}  # fmt: skip
    lines = []
    for (d, m, n, b, net, mode), r in sorted(ok.items()):
        ref = ok.get((d, m, n, b, net, "hessian"))
        if d == 100 and mode == "hvp" and ref is not None:
            ratio = r["step_s"] / ref["step_s"]
            res = r["residual_s"] / ref["residual_s"]
            lines.append(
                f"hvp / hessian at d=100, m={m}, n={n}, batch {b}, network {_net(r)}: step "
                f"{ratio:.3f}, residual {res:.3f} (goal <= 0.25: "
                f"{'met' if ratio <= 0.25 else 'missed'})"
            )
    for (d, m, n, b, net, mode), r in sorted(ok.items()):
        low = ok.get((10, m, n, b, net, mode))
        if d == 1000 and mode == "hutchinson" and low is not None:
            ratio = r["step_s"] / low["step_s"]
            lines.append(
                f"hutchinson step d=1000 ({r.get('head_form')} head) / d=10, m={m}, n={n}, "
                f"batch {b}: {ratio:.3g} (goal <= "
                f"3: {'met' if ratio <= 3 else 'missed'}); the game's coefficients alone "
                f"(drift, costs, diffusion columns at the batch's states) take "
                f"{r['game_s'] / low['step_s']:.3g}x the d=10 step"
            )
    for (d, m, _n, b, _net_name, mode), r in sorted(ok.items()):
        if d == 100 and b == 4096:
            lines.append(
                f"FLOP rate at batch 4096, d=100, m={m}, {mode}: {r['flop_rate'] / 1e9:.3g} "
                f"GFLOP/s = {100 * r['flop_fraction']:.1f}% of the {r['matmul_size']}^2 matmul "
                f"({r['matmul_flop_rate'] / 1e9:.3g} GFLOP/s) (goal >= 25%: "
                f"{'met' if r['flop_fraction'] >= 0.25 else 'missed'})"
            )
    for r in records:
        if r.get("kind") == "gauss_newton" and "step_s" in r and r["batch"] == 4096:
            lines.append(
                f"FLOP rate at batch 4096, d={r['d']}, m={r['m']}, Gauss-Newton iteration "
                f"(solve's default training step for LQ games): {r['flop_rate'] / 1e9:.3g} "
                f"GFLOP/s = {100 * r['flop_fraction']:.1f}% of the {r['matmul_size']}^2 "
                f"matmul ({r['matmul_flop_rate'] / 1e9:.3g} GFLOP/s) (goal >= 25%: "
                f"{'met' if r['flop_fraction'] >= 0.25 else 'missed'}); FLOPs counted on the "
                f"CG-unrolled iteration ({100 * r['unrolled_flop_fraction']:.1f}% at its own "
                f"time), estimate/count {r['flops_estimate'] / r['flops']:.3f}; its J^T J v "
                f"product alone {100 * r['matvec_flop_fraction']:.1f}%"
            )
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="d = 4, m = 1, batch 64")
    parser.add_argument("--out", type=Path, default=DEFAULT_RESULTS_DIR, help="results dir")
    parser.add_argument("--dims", type=int, nargs="+",
                        default=[1, 2, 5, 10, 20, 50, 100, 200, 500, 1000])  # fmt: skip
    parser.add_argument("--regimes", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    parser.add_argument("--noise", type=int, default=8, help="sweep noise dim n = min(d, noise)")
    parser.add_argument("--full-noise-dims", type=int, nargs="*", default=[10, 100],
                        help="also run these d with n = d (random_game's default)")  # fmt: skip
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--probes", type=int, default=2, help="Hutchinson probes")
    parser.add_argument("--flops-case", action=argparse.BooleanOptionalAction, default=True,
                        help="extra case: hvp and hessian, d = 100, m = 1, batch 4096")  # fmt: skip
    parser.add_argument("--gauss-newton-case", action=argparse.BooleanOptionalAction,
                        default=True, help="extra: one Gauss-Newton iteration of solve's "
                        "default refinement and its J^T J v product, d = 100, m = 1, batch "
                        "4096 (GaussNewtonConfig.batch_size)")  # fmt: skip
    parser.add_argument("--correction-case", action=argparse.BooleanOptionalAction, default=True,
                        help="extra: hvp and hessian, d = 100, m = 1, quadratic head + MLP "
                        "correction (x-dependent Hessian)")  # fmt: skip
    parser.add_argument("--stochastic-case", action=argparse.BooleanOptionalAction, default=True,
                        help="extra: hutchinson, d = 1000, m = 1, no forward guard")  # fmt: skip
    parser.add_argument("--reps", type=int, default=5, help="interleaved repetitions")
    parser.add_argument("--budget", type=float, default=60.0,
                        help="stop repeating after 2 rounds past this many seconds")  # fmt: skip
    parser.add_argument("--max-forward-s", type=float, default=2.0,
                        help="skip a case whose value-network forward pass on the batch takes "
                        "longer (a step costs ~10-40 forward passes)")  # fmt: skip
    parser.add_argument("--max-gb", type=float, default=6.0, help="memory limit for a case")
    parser.add_argument("--matmul", type=int, default=1024, help="matmul size S")
    parser.add_argument("--x64", action="store_true", help="float64 (default float32)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.x64:
        jax.config.update("jax_enable_x64", True)
    if args.quick:
        args.dims, args.regimes, args.batch, args.reps = [4], [1], 64, 2
        args.full_noise_dims, args.flops_case, args.matmul = [], False, 512
        args.stochastic_case, args.correction_case = False, False
        gauss_newton = [(4, 1, 4, 64)] if args.gauss_newton_case else []
    else:
        gauss_newton = [(100, 1, min(100, args.noise), 4096)] if args.gauss_newton_case else []

    label = device_label()
    print(f"device: {device_string(label)}")
    print(f"start {timestamp()}  load: {uptime()}", flush=True)
    dtype = jnp.float64 if args.x64 else jnp.float32
    matmul = make_matmul(args.matmul, dtype)
    # Goal cases first (FLOP rate at batch 4096; n = d), then the sweep in increasing d, then
    # the stochastic mode at d = 1000, m = 1 without the forward-time guard (goal 2).
    # Entries: (d, m, n, batch, sweep, modes, max_forward_s, correction).
    sweep_modes, inf = list(args.modes), float("inf")
    cases = []
    if args.flops_case:
        cases.append((100, 1, min(100, args.noise), 4096, False, ["hvp", "hessian"], inf, None))
    if args.correction_case:
        cases.append((100, 1, min(100, args.noise), args.batch, False, ["hvp", "hessian"], inf,
                      True))  # fmt: skip
    cases += [(d, m, d, args.batch, False, sweep_modes, args.max_forward_s, None)
              for d in args.full_noise_dims for m in args.regimes if d > args.noise]  # fmt: skip
    cases += [(d, m, min(d, args.noise), args.batch, True, sweep_modes, args.max_forward_s, None)
              for d in args.dims for m in args.regimes]  # fmt: skip
    if args.stochastic_case and 1000 in args.dims:
        cases.append((1000, 1, args.noise, args.batch, False, ["hutchinson"], inf, None))
    args.out.mkdir(parents=True, exist_ok=True)
    json_path = args.out / "dimension.json"
    json_path.write_text("")
    records, gn_records = [], []
    stamp = timestamp()
    for d, m, n, batch, sweep, modes, max_forward_s, correction in cases:
        args_case = argparse.Namespace(
            **{**vars(args), "modes": modes, "max_forward_s": max_forward_s,
               "correction": correction}
        )  # fmt: skip
        try:
            recs = run_case(d, m, n, batch, args_case, matmul)
        except Exception as err:  # noqa: BLE001 - record and continue with the other cases
            recs = [dict(d=d, m=m, n=n, batch=batch, mode=mode, skipped=f"error: {err!r}"[:300],
                         network="quadratic+mlp" if correction else "quadratic")
                    for mode in args_case.modes]  # fmt: skip
        for r in recs:
            r.update(sweep=sweep, timestamp=stamp, device=label, load=uptime(),
                     dtype=jnp.dtype(dtype).name)  # fmt: skip
            print(" ".join(str(c) for c in row(r)), f"  [{time.strftime('%H:%M:%S')}]",
                  flush=True)  # fmt: skip
        write_jsonl(json_path, recs, append=True)
        records += recs

    for d, m, n, batch in gauss_newton:
        try:
            recs = run_gauss_newton_case(d, m, n, batch, args, matmul)
        except Exception as err:  # noqa: BLE001
            recs = [dict(kind="gauss_newton", d=d, m=m, n=n, batch=batch, mode="hvp",
                         skipped=f"error: {err!r}"[:300])]  # fmt: skip
        for r in recs:
            r.update(timestamp=stamp, device=label, load=uptime(), dtype=jnp.dtype(dtype).name)
            print("gauss-newton", {k: v for k, v in r.items() if k in (
                "d", "batch", "step_s", "matvec_s", "flops", "flop_fraction", "skipped")},
                f"  [{time.strftime('%H:%M:%S')}]", flush=True)  # fmt: skip
        write_jsonl(json_path, recs, append=True)
        gn_records += recs
    steps = [r for r in records if r.get("kind") != "gauss_newton"]
    print("\n" + format_table(HEADERS, [row(r) for r in steps]))
    print(
        "\ncomp = lower + compile of the jitted train step; step = median warm step "
        "(interleaved over modes); mem = XLA memory_analysis temp + arguments + outputs "
        "(not RSS); res/fwd = residual evaluation / value-network forward pass on the same "
        "batch; GFLOP/s = XLA cost_analysis flops / step time; %matmul = that over the "
        f"{args.matmul}^2 matmul rate measured in the same rounds; rdiff = max |residual - "
        "jax.hessian residual| / max |jax.hessian residual| on the same batch, random head "
        "coefficients (Hutchinson: sketch error, unbiased but not zero)."
    )
    if gn_records:
        print(
            "\nGauss-Newton (Levenberg-Marquardt) iteration of solve's default refinement, "
            "the training step of LQ games (no Adam steps by default): iter = one iteration "
            "(linearise, Jacobi probes, CG matrix-vector products J^T J v, trial loss); GFLOP "
            "= cost_analysis of the same iteration with the CG loop unrolled (XLA counts a "
            "loop body once), %matmul = GFLOP / iter time; est/GFLOP = (iteration with 1 CG "
            "step + (CG - 1) x one matvec) / GFLOP, a cross-check; unrolled = that unrolled "
            "iteration timed; matvec = one J^T J v alone.\n" + gauss_newton_table(gn_records)
        )
    print("\n".join(["", "Goals:"] + goals(records + gn_records)))
    print(f"end {timestamp()}  load: {uptime()}")
    png_path = args.out / "dimension.png"
    plot(records, png_path)
    print(f"\nwrote {json_path} and {png_path}")
    return records + gn_records


if __name__ == "__main__":
    main()
