"""Riccati reference: stackjax (diffrax Dopri8, jitted) vs scipy ``solve_ivp`` (DOP853).

Solves the coupled regime-switching Riccati system of docs/math.md §7.3 for random games
(`stackjax.examples.random_game`, noise dimension n = d, leader/follower controls 2 + 2) with
d in {10, 50, 100} and m in {2, 4}, float64, rtol = atol = 1e-12, backward from T to 0.

Methods (run interleaved for each (d, m), medians reported):

* ``stackjax``: ``sj.riccati_reference(game, num_times=2)`` (output only at t = 0 and t = T, so
  output storage does not count). Compile time = first call - median warm call.
* ``scipy-numpy``: ``solve_ivp(method="DOP853")`` on the flattened state with the right-hand
  side written in plain numpy (an independent transcription of docs/math.md §7.1-7.3, written
  with BLAS matrix products; also a cross-check of the values).
* ``scipy-jaxrhs``: the same ``solve_ivp`` calling stackjax's jitted ``riccati_rhs`` (host
  round trip numpy -> jax -> numpy on every evaluation).

Agreement: max |X_stackjax(0) - X_scipy(0)| / max |X_stackjax(0)| over X in {P, p, c}
(flagged when > 1e-8; nothing is asserted).

Run: ``python benchmarks/riccati.py`` (full, ~15-20 min on 2 CPU cores) or
``python benchmarks/riccati.py --quick`` (d = 3, m = 2, one repetition, < 30 s; run in CI).
Writes ``<out>/riccati.json`` (JSON lines) and ``<out>/riccati.png``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path


def _pin_blas_threads(argv) -> str:
    """Sets the BLAS thread count for the numpy baseline before numpy is first imported."""
    value = "1"
    for j, arg in enumerate(argv):
        if arg == "--blas-threads" and j + 1 < len(argv):
            value = argv[j + 1]
        elif arg.startswith("--blas-threads="):
            value = arg.split("=", 1)[1]
    if value != "0":
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.setdefault(var, value)
    return value


if __name__ == "__main__":
    _pin_blas_threads(sys.argv[1:])

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from scipy.integrate import solve_ivp  # noqa: E402

import stackjax as sj  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    DEFAULT_RESULTS_DIR,
    device_label,
    device_string,
    format_table,
    median,
    time_call,
    timestamp,
    write_jsonl,
)

RTOL = ATOL = 1e-12
AGREEMENT_TOL = 1e-8


# ---------------------------------------------------------------------------------------------
# Plain-numpy right-hand side (independent transcription of docs/math.md §7.1-7.3).
# ---------------------------------------------------------------------------------------------


class NumpyRiccati:
    """``dY/dt`` of the Riccati system for a (non-zero-sum) `LQGame`, in numpy.

    State layout of the flat vector: ``P [2, m, d, d]``, ``p [2, m, d]``, ``c [2, m]``
    concatenated (C order). Loops over regimes; both players are handled together.
    """

    def __init__(self, game):
        if game.zero_sum:
            raise ValueError("The numpy baseline implements the non-zero-sum system only.")
        a = {k: np.asarray(getattr(game, k), dtype=np.float64) for k in _FIELDS}
        self.m, self.d = a["A"].shape[0], a["A"].shape[-1]
        self.n = a["C"].shape[1]
        self.k1 = a["B1"].shape[-1]
        m, d, n = self.m, self.d, self.n
        self.T = float(a["T"])
        self.Gamma = a["Gamma"]
        self.lam = a["lam"]
        self.A = a["A"]
        self.At = np.ascontiguousarray(np.swapaxes(a["A"], 1, 2))
        self.b = a["b"]
        self.B = np.concatenate([a["B1"], a["B2"]], axis=-1)  # [m, d, K]
        self.Bt = np.ascontiguousarray(np.swapaxes(self.B, 1, 2))  # [m, K, d]
        D = np.concatenate([a["D1"], a["D2"]], axis=-1)  # [m, n, d, K]
        self.has_D = bool(np.any(D != 0))
        self.Dflat = D.reshape(m, n * d, -1)  # [(l, d), K]
        self.C = a["C"]  # [m, n, d, d]
        self.Ct = np.ascontiguousarray(np.swapaxes(a["C"], 2, 3))  # C_l^T
        self.Cflat = a["C"].reshape(m, n * d, d)  # [(l, d), e]
        self.s = a["s"]  # [m, n, d]
        self.Q, self.q = a["Q"], a["q"]
        self.S = np.concatenate([a["S1"], a["S2"]], axis=2)  # [2, m, K, d]
        self.r = np.concatenate([a["r1"], a["r2"]], axis=2)  # [2, m, K]
        top = np.concatenate([a["R11"], a["R12"]], axis=3)
        bottom = np.concatenate([np.swapaxes(a["R12"], 2, 3), a["R22"]], axis=3)
        self.R = np.concatenate([top, bottom], axis=2)  # [2, m, K, K]
        self.y_T = np.concatenate([a["G"].ravel(), a["g"].ravel(), a["g0"].ravel()])
        self.sizes = (2 * m * d * d, 2 * m * d, 2 * m)

    def unflatten(self, y):
        m, d = self.m, self.d
        nP, npp, _ = self.sizes
        return (
            y[:nP].reshape(2, m, d, d),
            y[nP : nP + npp].reshape(2, m, d),
            y[nP + npp :].reshape(2, m),
        )

    def _regime(self, i, P, p):
        """``(FP [2, d, d], Fp [2, d], Fc [2])`` in regime ``i`` (P [2, d, d], p [2, d])."""
        k1, d, n = self.k1, self.d, self.n
        lam1, lam2 = self.lam
        # sum_l C_l^T P_k C_l: two batched GEMM passes over the n noise columns (O(n d^3)).
        PC = np.matmul(P[:, None], self.C[i][None])  # [2, n, d, d] = P_k C_l
        CPC = np.matmul(self.Ct[i][None], PC).sum(axis=1)  # [2, d, d]
        Ps = np.matmul(P, self.s[i].T)  # [2, d, n] = P_k s_l
        CPs = np.einsum("lde,kdl->ke", self.C[i], Ps)  # sum_l C_l^T P_k s_l
        sPs = np.einsum("ld,kdl->k", self.s[i], Ps)
        # §7.1
        Rt = self.R[:, i].copy()
        E = self.S[:, i] + np.matmul(self.Bt[i][None], P)  # [2, K, d]
        e = self.r[:, i] + np.matmul(p, self.B[i])  # [2, K]
        if self.has_D:
            PD = np.matmul(P[:, None], self.Dflat[i].reshape(n, d, -1)[None])  # [2, n, d, K]
            PD = PD.reshape(2, n * d, -1)
            Rt += np.matmul(self.Dflat[i].T[None], PD)
            E += np.matmul(np.swapaxes(PD, 1, 2), self.Cflat[i][None])
            e += np.einsum("kxa,x->ka", PD, self.s[i].reshape(-1))
        Rt = 0.5 * (Rt + np.swapaxes(Rt, 1, 2))
        # §7.2
        R11_1, R12_1, R22_1 = Rt[0, :k1, :k1], Rt[0, :k1, k1:], Rt[0, k1:, k1:]
        R21_2, R22_2 = Rt[1, k1:, :k1], Rt[1, k1:, k1:]
        Lam = -np.linalg.solve(R22_2, R21_2)
        Kg = np.linalg.solve(R22_2, E[1, k1:])
        kap0 = np.linalg.solve(R22_2, e[1, k1:])
        W = R12_1 + Lam.T @ R22_1
        Rbar = R11_1 + R12_1 @ Lam + Lam.T @ R12_1.T + Lam.T @ R22_1 @ Lam
        Ebar = E[0, :k1] + Lam.T @ E[0, k1:] - W @ Kg
        ebar = e[0, :k1] + Lam.T @ e[0, k1:] - W @ kap0
        L1 = np.linalg.solve(Rbar, Ebar)
        l1 = np.linalg.solve(Rbar, ebar)
        L = np.concatenate([L1, Kg + Lam @ L1])  # [K, d]
        ell = np.concatenate([l1, kap0 + Lam @ l1])  # [K]
        # Entropy constants (first form of §7.3).
        eps = np.zeros(2)
        k2 = Rt.shape[-1] - k1
        if lam1 > 0:
            eps[0] += (
                -0.5 * lam1 * k1 * np.log(np.pi * lam1) + 0.5 * lam1 * np.linalg.slogdet(R11_1)[1]
            )
            eps[1] += 0.5 * lam1 * np.trace(np.linalg.solve(R11_1, Rt[1, :k1, :k1]))
        if lam2 > 0:
            eps[1] += (
                -0.5 * lam2 * k2 * np.log(np.pi * lam2) + 0.5 * lam2 * np.linalg.slogdet(R22_2)[1]
            )
            eps[0] += 0.5 * lam2 * np.trace(np.linalg.solve(R22_2, R22_1))
        # §7.3 (regime coupling added by the caller).
        RL = np.matmul(Rt, L)  # [2, K, d]
        LE = np.matmul(L.T[None], E)  # [2, d, d]
        PA = np.matmul(P, self.A[i])
        FP = self.Q[:, i] + PA + np.swapaxes(PA, 1, 2) + CPC + np.matmul(L.T[None], RL)
        FP -= LE + np.swapaxes(LE, 1, 2)
        FP = 0.5 * (FP + np.swapaxes(FP, 1, 2))
        Rell = np.matmul(Rt, ell)  # [2, K]
        Fp = self.q[:, i] + p @ self.A[i] + P @ self.b[i] + CPs + Rell @ L - e @ L
        Fp -= np.matmul(ell, E)
        Fc = 2.0 * p @ self.b[i] + sPs + Rell @ ell - 2.0 * e @ ell + eps
        return FP, Fp, Fc

    def derivatives(self, P, p, c):
        """``(dP/dt, dp/dt, dc/dt)`` with the shapes of ``(P, p, c)``."""
        FP = np.empty_like(P)
        Fp = np.empty_like(p)
        Fc = np.empty_like(c)
        for i in range(self.m):
            FP[:, i], Fp[:, i], Fc[:, i] = self._regime(i, P[:, i], p[:, i])
        G = self.Gamma
        dP = -(FP + np.tensordot(P, G, axes=([1], [1])).transpose(0, 3, 1, 2))
        dp = -(Fp + np.tensordot(p, G, axes=([1], [1])).transpose(0, 2, 1))
        dc = -(Fc + c @ G.T)
        return dP, dp, dc

    def __call__(self, t, y):
        dP, dp, dc = self.derivatives(*self.unflatten(y))
        return np.concatenate([dP.ravel(), dp.ravel(), dc.ravel()])


_FIELDS = (
    "T", "Gamma", "A", "B1", "B2", "b", "C", "D1", "D2", "s", "Q", "S1", "S2", "R11", "R12",
    "R22", "q", "r1", "r2", "G", "g", "g0", "lam",
)  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Methods.
# ---------------------------------------------------------------------------------------------


def solve_stackjax(game):
    sol = sj.riccati_reference(game, num_times=2)
    return sol.P[0], sol.p[0], sol.c[0], int(sol.num_steps)


def make_jax_rhs(game, base: NumpyRiccati):
    """A flat ``f(t, y) -> dy/dt`` for scipy that calls stackjax's ``riccati_rhs`` under jit."""
    unflatten = base.unflatten

    @jax.jit
    def flat_rhs(g, y):
        dP, dp, dc = sj.riccati_rhs(g, *unflatten(y))
        return jnp.concatenate([dP.ravel(), dp.ravel(), dc.ravel()])

    def fun(t, y):
        return np.asarray(flat_rhs(game, jnp.asarray(y)))

    return fun


def solve_scipy(fun, base: NumpyRiccati):
    # No t_eval: the last accepted step ends exactly at t = 0 (no dense-output evaluations).
    res = solve_ivp(fun, (base.T, 0.0), base.y_T, method="DOP853", rtol=RTOL, atol=ATOL)
    if not res.success:
        raise RuntimeError(f"solve_ivp failed: {res.message}")
    P, p, c = base.unflatten(res.y[:, -1])
    return P, p, c, int(res.nfev)


def rel_diff(ref, other) -> float:
    """max over (P, p, c) of max|ref - other| / max|ref|."""
    out = 0.0
    for a, b in zip(ref, other, strict=True):
        a, b = np.asarray(a), np.asarray(b)
        out = max(out, float(np.max(np.abs(a - b)) / max(np.max(np.abs(a)), 1e-300)))
    return out


# ---------------------------------------------------------------------------------------------
# Driver.
# ---------------------------------------------------------------------------------------------


def run_case(d, m, reps, seed, budget):
    game = sj.examples.random_game(jax.random.key(seed), d=d, m=m)
    base = NumpyRiccati(game)
    jax_fun = make_jax_rhs(game, base)
    state = sum(base.sizes)

    # Compilation: first stackjax call; also warm the jitted RHS used by scipy-jaxrhs.
    first, out = time_call(solve_stackjax, game)
    P0, p0, c0, steps = out
    rhs_compile, _ = time_call(jax_fun, base.T, base.y_T)
    # Cross-check the two right-hand sides at the terminal data.
    rhs_diff = float(
        np.max(np.abs(jax_fun(base.T, base.y_T) - base(base.T, base.y_T)))
        / np.max(np.abs(base(base.T, base.y_T)))
    )

    times = {"stackjax": [], "scipy_numpy": [], "scipy_jaxrhs": []}
    results = {}
    for rep in range(reps):
        round_start = time.perf_counter()
        t, out = time_call(solve_stackjax, game)
        times["stackjax"].append(t)
        t, results["scipy_numpy"] = time_call(solve_scipy, base, base)
        times["scipy_numpy"].append(t)
        t, results["scipy_jaxrhs"] = time_call(solve_scipy, jax_fun, base)
        times["scipy_jaxrhs"].append(t)
        if rep + 1 < reps and time.perf_counter() - round_start > budget:
            print(f"  (d={d}, m={m}: round took > {budget:.0f} s, stopping after {rep + 1})")
            break
    sj_run = median(times["stackjax"])
    ref = (P0, p0, c0)
    rec = {
        "benchmark": "riccati",
        "d": d,
        "m": m,
        "n": base.n,
        "controls": [base.k1, base.B.shape[-1] - base.k1],
        "state_size": state,
        "seed": seed,
        "rtol": RTOL,
        "atol": ATOL,
        "num_times": 2,
        "repetitions": len(times["stackjax"]),
        "stackjax_first_call_s": first,
        "stackjax_compile_s": first - sj_run,
        "stackjax_run_s": sj_run,
        "stackjax_steps": steps,
        "scipy_numpy_s": median(times["scipy_numpy"]),
        "scipy_numpy_nfev": results["scipy_numpy"][3],
        "scipy_jaxrhs_s": median(times["scipy_jaxrhs"]),
        "scipy_jaxrhs_nfev": results["scipy_jaxrhs"][3],
        "jaxrhs_first_call_s": rhs_compile,
        "times_s": times,
        "ratio_numpy": median(times["scipy_numpy"]) / sj_run,
        "ratio_jaxrhs": median(times["scipy_jaxrhs"]) / sj_run,
        "rel_diff_numpy": rel_diff(ref, results["scipy_numpy"][:3]),
        "rel_diff_jaxrhs": rel_diff(ref, results["scipy_jaxrhs"][:3]),
        "rhs_rel_diff_at_T": rhs_diff,
    }
    return rec


HEADERS = [
    "d", "m", "state", "sj comp s", "sj run s", "steps", "sp-np s", "nfev", "sp-jax s",
    "np/sj", "jax/sj", "rdiff np", "rdiff jax",
]  # fmt: skip


def row(r):
    flag = lambda x: f"{x:.1e}" + ("!" if x > AGREEMENT_TOL else "")  # noqa: E731
    return [
        r["d"], r["m"], r["state_size"], f"{r['stackjax_compile_s']:.2f}",
        f"{r['stackjax_run_s']:.4g}", r["stackjax_steps"], f"{r['scipy_numpy_s']:.4g}",
        r["scipy_numpy_nfev"], f"{r['scipy_jaxrhs_s']:.4g}", f"{r['ratio_numpy']:.2f}",
        f"{r['ratio_jaxrhs']:.2f}", flag(r["rel_diff_numpy"]), flag(r["rel_diff_jaxrhs"]),
    ]  # fmt: skip


def plot(records, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    styles = {"stackjax_run_s": ("stackjax (warm)", "o-"),
              "scipy_numpy_s": ("scipy DOP853 + numpy RHS", "s--"),
              "scipy_jaxrhs_s": ("scipy DOP853 + jitted riccati_rhs", "^:")}  # fmt: skip
    for m in sorted({r["m"] for r in records}):
        rs = sorted((r for r in records if r["m"] == m), key=lambda r: r["d"])
        ds = [r["d"] for r in rs]
        for key, (label, style) in styles.items():
            ax.plot(ds, [r[key] for r in rs], style, label=f"{label}, m={m}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("state dimension d")
    ax.set_ylabel("wall time to solve [s] (median)")
    ax.set_title("Riccati system, float64, rtol=atol=1e-12")
    ax.legend(fontsize=7)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="d = 3, m = 2, one rep (CI)")
    parser.add_argument("--out", type=Path, default=DEFAULT_RESULTS_DIR, help="results dir")
    parser.add_argument("--reps", type=int, default=3, help="warm repetitions (default 3)")
    parser.add_argument("--dims", type=int, nargs="+", default=[10, 50, 100])
    parser.add_argument("--regimes", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--blas-threads", default="1",
        help="BLAS threads of the numpy baseline (env vars set before import; 0 = library "
        "default; an already-set OPENBLAS_NUM_THREADS/OMP_NUM_THREADS wins)",
    )  # fmt: skip
    parser.add_argument(
        "--budget", type=float, default=300.0,
        help="stop repeating a case once one interleaved round exceeds this many seconds",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.quick:
        args.dims, args.regimes, args.reps = [3], [2], 1

    label = device_label()
    label["blas_threads_arg"] = args.blas_threads
    print(f"device: {device_string(label)}")
    print(f"stackjax: riccati_reference(num_times=2), diffrax Dopri8; scipy: solve_ivp DOP853; "
          f"rtol = atol = {RTOL:g}; reps = {args.reps} (medians)\n", flush=True)  # fmt: skip
    records = []
    stamp = timestamp()
    for d in args.dims:
        for m in args.regimes:
            rec = run_case(d, m, args.reps, args.seed, args.budget)
            rec.update(timestamp=stamp, device=label)
            records.append(rec)
            print(f"d={d:4d} m={m}: stackjax {rec['stackjax_run_s']:.4g} s "
                  f"(compile {rec['stackjax_compile_s']:.3g} s), scipy-numpy "
                  f"{rec['scipy_numpy_s']:.4g} s, scipy-jaxrhs {rec['scipy_jaxrhs_s']:.4g} s, "
                  f"reps {rec['repetitions']}", flush=True)  # fmt: skip

    print("\n" + format_table(HEADERS, [row(r) for r in records]))
    print("\nsj = stackjax, sp-np = scipy + numpy RHS, sp-jax = scipy + jitted riccati_rhs; "
          "np/sj, jax/sj = time ratios (scipy / stackjax warm); rdiff = max relative "
          f"difference of P(0), p(0), c(0) to stackjax ('!' if > {AGREEMENT_TOL:g}); "
          "nfev = scipy RHS evaluations.")  # fmt: skip
    bad = [r for r in records if max(r["rel_diff_numpy"], r["rel_diff_jaxrhs"]) > AGREEMENT_TOL]
    if bad:
        print(f"WARNING: agreement worse than {AGREEMENT_TOL:g} for (d, m) = "
              f"{[(r['d'], r['m']) for r in bad]}")  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    json_path = write_jsonl(args.out / "riccati.json", records)
    png_path = args.out / "riccati.png"
    plot(records, png_path)
    print(f"\nwrote {json_path} and {png_path}")
    return records


if __name__ == "__main__":
    main()
