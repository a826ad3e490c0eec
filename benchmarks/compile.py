"""Compile time against run time under XLA:CPU settings: the evidence for `stackjax._xla_flags`.

Every workload runs in a fresh interpreter (XLA reads its flags once per process), first call
(compilation included) and a second identical call with another key (compiled programs reused),
for each setting, interleaved so that machine load hits all settings alike:

* ``stackjax``: the flags `import stackjax` sets (MLIR fusion emitters off);
* ``fusion-emitters``: the same with ``--xla_cpu_use_fusion_emitters=true`` (XLA's default);
* ``... + O0``: either of the above with ``--xla_backend_optimization_level=0`` (LLVM level 0,
  the test suite's setting).

Workloads: ``tiny`` (the tests' typical solve: scalar game, 20 Adam steps of 32 points and 3
Gauss-Newton iterations, float64), ``riccati`` (`riccati_reference` of the cross-term game,
float64), ``d10`` (random game, d = 10, m = 2, 400 Adam steps and 4 Gauss-Newton iterations,
float32: compilation and a run of user size; its value error against Riccati checks that the
settings compute the same thing).

Run: ``python benchmarks/compile.py`` (~10 min on 2 CPU cores) or ``--quick`` (``riccati`` with
and without the MLIR fusion emitters at LLVM level 0, once; ~20 s). Writes ``<out>/compile.json``
(JSON lines).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DEFAULT_RESULTS_DIR, format_table, timestamp, write_jsonl  # noqa: E402

SETTINGS = {
    "stackjax": "",
    "fusion-emitters": "--xla_cpu_use_fusion_emitters=true",
    "stackjax + O0": "--xla_backend_optimization_level=0",
    "fusion-emitters + O0": "--xla_cpu_use_fusion_emitters=true --xla_backend_optimization_level=0",
}

WORKLOAD = r"""
import json, sys, time
import jax
import stackjax as sj

name = sys.argv[1]
if name in ("tiny", "riccati"):
    jax.config.update("jax_enable_x64", True)


def run(key):
    if name == "tiny":
        config = sj.SolverConfig(adam=sj.AdamConfig(steps=20, batch_size=32),
                                 gauss_newton=sj.GaussNewtonConfig(steps=3))
        sol = sj.solve(sj.examples.scalar_game(), key, config, chunk_size=10, verbose=False,
                       diagnostic_points=0)
        return float(sol.history["loss"][-1])
    if name == "riccati":
        game = sj.examples.cross_term_game(lam=(0.2, 0.2 + 0.1 * float(jax.random.uniform(key))))
        ref = sj.riccati_reference(game, num_times=41)
        return float(ref.value(0.0, game.x0)[0, 0])
    game = sj.examples.random_game(jax.random.key(0), d=10, m=2)
    config = sj.SolverConfig(adam=sj.AdamConfig(steps=400),
                             gauss_newton=sj.GaussNewtonConfig(steps=4))
    sol = sj.solve(game, key, config, chunk_size=200, verbose=False, diagnostic_points=0)
    err = sj.evaluate(sol, sj.riccati_reference(game), jax.random.key(9))
    return float(err["value"].max())


times, results = [], []
for seed in (0, 1):
    tic = time.perf_counter()
    results.append(run(jax.random.key(seed)))
    times.append(time.perf_counter() - tic)
print(json.dumps({"first_s": times[0], "second_s": times[1], "result": results[0]}))
"""


def measure(workload: str, setting: str) -> dict:
    env = dict(os.environ)
    env.pop("XLA_FLAGS", None)
    env.pop("JAX_COMPILATION_CACHE_DIR", None)  # compile for real: no persistent cache
    if SETTINGS[setting]:
        env["XLA_FLAGS"] = SETTINGS[setting]
    proc = subprocess.run(
        [sys.executable, "-c", WORKLOAD, workload], capture_output=True, text=True, env=env
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{workload} under {setting!r} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="riccati, two settings, once")
    parser.add_argument("--repeats", type=int, default=None, help="repetitions (default 2)")
    parser.add_argument("--out", default=str(DEFAULT_RESULTS_DIR))
    args = parser.parse_args(argv)
    workloads = ["riccati"] if args.quick else ["tiny", "riccati", "d10"]
    settings = [s for s in SETTINGS if s.endswith("O0")] if args.quick else list(SETTINGS)
    repeats = args.repeats or (1 if args.quick else 2)
    started = timestamp()
    records = []
    for workload in workloads:
        for rep in range(repeats):
            for setting in settings:  # interleaved: load drifts hit every setting
                if workload == "d10" and setting.endswith("O0"):
                    continue  # users' setting only
                rec = {"workload": workload, "setting": setting, "repeat": rep,
                       **measure(workload, setting), "date": started}  # fmt: skip
                print(f"[compile] {workload:8s} {setting:22s} first {rec['first_s']:6.2f} s  "
                      f"second {rec['second_s']:6.2f} s", flush=True)  # fmt: skip
                records.append(rec)
    rows = []
    for workload in workloads:
        base = None
        for setting in settings:
            recs = [r for r in records if r["workload"] == workload and r["setting"] == setting]
            if not recs:
                continue
            first = min(r["first_s"] for r in recs)
            second = min(r["second_s"] for r in recs)
            base = first if base is None else base
            ratio = f"{first / base:.2f}"
            result = f"{recs[0]['result']:.6g}"
            rows.append([workload, setting, f"{first:.2f}", f"{second:.2f}", ratio, result])
    print(f"\nFirst and second call, seconds (best of {repeats}); ratio of first calls to the "
          "first setting's; result (loss / value / value error) must agree:")  # fmt: skip
    print(format_table(["workload", "setting", "first", "second", "ratio", "result"], rows))
    path = write_jsonl(Path(args.out) / "compile.json", records)
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
