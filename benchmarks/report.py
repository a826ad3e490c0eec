"""Regenerates the performance report: runs every benchmark script, one after the other, and
writes ``docs/performance.md`` (each script's printed tables, the device and the command line)
with the scripts' plots copied to ``docs/benchmarks/``.

The README's "Performance" section quotes this report. Run::

    python benchmarks/report.py                  # every script, full settings (~2-3 h on 2 cores)
    python benchmarks/report.py --quick          # every script's --quick mode (~5 min)
    python benchmarks/report.py --only dimension accuracy --args accuracy="--skip-table"
    python benchmarks/report.py --only dimension --update   # replace one section, keep the rest
    python benchmarks/report.py --design         # rewrite only the "design" section (no script)

The scripts run one at a time in fresh interpreters (each configures JAX itself), so their
timings do not disturb each other; each script's own interleaving makes its ratios
comparable within a run. A failing script is reported in the document and in the exit code;
the others still run. Every report ends with the "design" section, written from `DESIGN`: the
measurements behind implementation choices that the code cites as docs/performance.md.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"

#: (name, script, what it measures) in the order of the report.
SCRIPTS = (
    ("accuracy", "accuracy.py", "neural solver accuracy (the accuracy table) and time to accuracy"),
    ("robustness", "robustness.py", "default solve on a held-out family of games"),
    ("dimension", "dimension.py", "training-step cost against d per second-order operator"),
    ("deepxde_compare", "baselines/deepxde_compare.py", "stackjax vs DeepXDE (PyTorch)"),
    ("finite_difference", "baselines/finite_difference.py", "stackjax vs a grid solver"),
    ("riccati", "riccati.py", "Riccati reference vs scipy solve_ivp"),
    ("discrete_qse", "discrete_qse.py", "discrete quantal Stackelberg equilibria vs scipy"),
    ("compile", "compile.py", "compile time under XLA:CPU settings"),
)

#: The "design" section: measurements behind implementation choices, cited in the code as
#: docs/performance.md. No script produces them; edit an entry when its choice is re-measured.
DESIGN = """\
## design: measurements behind implementation choices

Not produced by a script: written by `benchmarks/report.py` from its `DESIGN` text, so that
regenerating the report keeps them. Machine: the project's 2-core x86_64 CPU VM (no
accelerator); dates are when each choice was measured.

- **Hessian-vector-product plan** (`stackjax._operators`, method `"hvp"`): with `r` directions,
  `"forward_over_reverse"` along them when `r <= 2 d`, else `"hvp_hessian"` (`d` HVPs along
  the axes, then contracted). On the solver's quadratic-head networks (float32, 256 points)
  the `d` axis HVPs plus the contraction cost about 1.4x `d` HVPs along given directions,
  hence the threshold `2 d` rather than `d` (2026-11-22).
- **Dense upper-triangle quadratic head** (`stackjax._solver._networks`): the quadratic
  coefficients are stored as dense `[d, d]` blocks of which only the upper triangle is used,
  instead of a packed triangular vector; gradients and Hessian products are then dense matrix
  products without gather/scatter. Training step 1.5x faster (2026-11-22; the problem size
  was not recorded).
- **Multiply-sum for the head's time expansion** (`ValueModel`): `sum_k T_k(tau) B_k` as a
  broadcast multiply and sum, not an `einsum`, whose cotangent (a dot contracting over the
  times) XLA:CPU fed from a transposed `[2 d^2, G]` copy. Adam step, batch 4096: d = 100
  956 ms with the einsum, 602 ms with the multiply-sum; d = 1000 the reverse, 4.8 s vs
  12.2 s, which is why large d uses the factored head (`NetworkConfig.head_form`) (2026-12-02).
- **Unrolled Cholesky for control dimensions up to 4** (`stackjax._gibbs._UNROLL_MAX`):
  elementwise factorisations and substitutions, which XLA fuses across a vmapped batch,
  instead of batched LAPACK calls, whose per-matrix overhead made the neural solver's step
  20x slower at k = 2 (2026-11-22). The simulator's and the Gibbs helpers' factorisations use
  the same code: the main job's Monte Carlo run (20,000 paths, 25 + 50 steps, k = 2) took
  3.3 s with LAPACK calls and 1.3 s unrolled (2026-12-07).
- **XLA:CPU flags** (`stackjax._xla_flags`; jaxlib 0.10.2, 2026-12-01).
  `--xla_cpu_enable_concurrency_optimized_scheduler=false`: `examples.cole_hopf_game`
  (d = 10), one Gauss-Newton refinement iteration of the MLP-corrected networks (batch 512)
  with 2 CG steps from the same key gave the batch loss 3.127e-01 with jaxlib 0.9.2 and with
  jaxlib 0.10.2 with the scheduler off, 9.24e-04 with it on, and the process then never
  exited; with 40 CG steps the call deadlocked with every XLA thread idle.
  `--xla_cpu_experimental_ynn_fusion_type=` (no YNN fusions): with states grouped by time
  (`LayoutConfig.points_per_time`) the same refinement crashed with a segmentation fault in
  a YNN transpose (`slinky::fuse_contiguous_dims`, located with gdb), at compile time
  without the scheduler flag and at run time with it; without YNN fusions the losses are
  correct, with or without the scheduler flag, at the same speed (d = 100 Gauss-Newton
  matrix-vector product: 0.94 s, 0.98 s with YNN).
  `--xla_cpu_use_fusion_emitters=false` (XLA:CPU's elemental fusion emitters instead of the
  MLIR ones; `python benchmarks/compile.py`, 2026-12-07, each setting in a fresh interpreter,
  interleaved, best of 2). First call (compilation included) / second call, seconds:
  the tests' tiny solve (scalar game, 20 Adam steps, 3 Gauss-Newton iterations) 15.8 / 0.26
  with the flag, 18.7 / 0.19 without; `riccati_reference` of the cross-term game 4.5 / 0.02
  vs 6.6 / 0.02; a d = 10 solve (400 Adam steps, 4 Gauss-Newton iterations, float32) 53.0 /
  5.9 vs 63.9 / 5.3, value error 1.40e-3 vs 1.39e-3. With LLVM level 0 as well (the tests'
  setting) the tiny solve compiles in 11.0 s (15.8 without the flag) and the Riccati
  reference in 3.3 s (5.2). The full test suite: 15.6 min with the flag, 22.1 min without
  (same machine, idle, 2026-12-07). Run time is within noise at these sizes (the d = 10
  second call is 0.6 s slower with the flag in the best-of-2, 0.5 s faster in a single
  earlier pair).
- **Long loops optimised under a lowered LLVM level** (`stackjax._xla_flags.loop_jit`;
  jaxlib 0.10.2, 2026-12-07, `XLA_FLAGS=--xla_backend_optimization_level=0` as in the tests,
  each setting in a fresh interpreter). Compile / run seconds per program level:
  `rl.learn`'s training program (cross-term game, dt = 0.01, 3 rounds of 1500 episodes)
  level 0: 2.9 / 7.9, level 1: 4.6 / 2.0, level 2: 5.1 / 2.4, level 3: 7.5 / 2.3;
  a Richardson Monte Carlo batch (controlled-diffusion game, 32 x 1000 paths, 16 and 32
  steps, exact Riccati policy) level 0: 3.5 / 13.6, level 1: 5.5 / 1.8. The default solve of
  the scalar game: refinement compile 4.3 s at level 0, 6.0 s at level 1, and the whole
  first call 17.9 s vs 13.5 s, a second call 3.4 s vs 1.5 s. The main job under level 0:
  45 s with `loop_jit`, 62 s without. Level 1 rather than 3: the same run time, compiled in
  about 60% of the time.
- **The tests' loop level** (`tests/_loops.py`, 2026-12-08, full suite `pytest -n 2` on 2
  idle cores, one run each): loops at level 1 everywhere 1710 test-seconds (15.0 min wall);
  level 0 everywhere (`STACKJAX_LOOP_OPTIMIZATION_LEVEL=0`) 1710 as well: short solves compile
  faster (the progress, resume and checkpoint tests 7-8 s faster each) and long trainings run
  slower (the non-LQ solve 28 -> 65 s, the robustness slice 51 -> 81 s); level 0 except for
  tests marked `long_loops` (and the cross-term q-learning checks in one test): 1436
  test-seconds (12.6 min).
- **Persistent cache of every program** (`stackjax.cli.enable_compilation_cache`,
  2026-12-07): with JAX's default threshold (programs compiling in 0.5 s or more) a second
  main-job run still compiled about 190 small programs (8.4 s of compilation, profiled);
  with no threshold the cache holds about 200 entries (3 MB) and the second run takes
  28-34 s instead of 35-38 s. `evaluate` compiles one program per solution structure: the
  main job's 21 reference checks take 3.0 s instead of 6.4 s on a second run.
"""


def run_script(script: str, results: Path, quick: bool, extra: list[str]) -> tuple[int, str, float]:
    """Runs one script; returns (exit code, its stdout + stderr tail, seconds)."""
    cmd = [sys.executable, str(BENCH / script), "--out", str(results)]
    cmd += ["--quick"] if quick else []
    cmd += extra
    env = dict(os.environ, MPLBACKEND="Agg")
    tic = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=str(ROOT))
    seconds = time.perf_counter() - tic
    out = proc.stdout
    if proc.returncode != 0:
        out += "\n--- stderr (tail) ---\n" + "\n".join(proc.stderr.splitlines()[-40:])
    return proc.returncode, out, seconds


def merge_sections(
    old: str, sections: list[tuple[str, str]], started: str, fixed: tuple | list = ()
) -> str:
    """``old`` report with the ``## name:`` sections of ``sections`` replaced (or appended).

    The header gets a line saying which sections were regenerated when; the other sections
    are kept as they were. ``fixed`` sections (not measured by a script, e.g. `DESIGN`) are
    replaced or appended too, without a line in the header.
    """
    parts = old.split("\n## ")
    header, body = parts[0], parts[1:]
    named = [(part.split(":", 1)[0], "## " + part) for part in body]
    new = dict([*sections, *fixed])
    merged = [new.pop(name, text).rstrip("\n") + "\n" for name, text in named]
    merged += [new[name].rstrip("\n") + "\n" for name, _ in [*sections, *fixed] if name in new]
    header = header.rstrip("\n")
    if sections:
        header += f"\n\nSections {', '.join(n for n, _ in sections)} regenerated on {started}."
    return header + "\n\n" + "\n".join(merged)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="every script's --quick mode")
    parser.add_argument("--only", nargs="+", choices=[s[0] for s in SCRIPTS], default=None)
    parser.add_argument(
        "--args", nargs="*", default=[], metavar="NAME=ARGS",
        help="extra arguments for one script, e.g. accuracy='--skip-scaling'",
    )  # fmt: skip
    parser.add_argument(
        "--update", action="store_true",
        help="with --only: replace those scripts' sections of the existing report, keep the rest",
    )  # fmt: skip
    parser.add_argument(
        "--design", action="store_true",
        help="rewrite only the design section of the existing report (runs no script)",
    )  # fmt: skip
    parser.add_argument("--docs", type=Path, default=ROOT / "docs", help="output folder")
    parser.add_argument("--results", type=Path, default=BENCH / "results", help="JSON folder")
    args = parser.parse_args(argv)
    extra = {}
    for item in args.args:
        name, _, value = item.partition("=")
        extra[name] = shlex.split(value)
    design = [("design", DESIGN)]
    doc = args.docs / ("performance_quick.md" if args.quick else "performance.md")
    if args.design:
        if not doc.exists():
            parser.error(f"--design rewrites a section of an existing report; {doc} is missing")
        doc.write_text(merge_sections(doc.read_text(), [], "", design))
        print(f"[report] rewrote the design section of {doc}")
        return 0
    chosen = [s for s in SCRIPTS if args.only is None or s[0] in args.only]
    args.results.mkdir(parents=True, exist_ok=True)
    images = args.docs / "benchmarks"
    images.mkdir(parents=True, exist_ok=True)
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    sections, failures = [], 0
    for name, script, what in chosen:
        print(f"[report] {script} ...", flush=True)
        code, out, seconds = run_script(script, args.results, args.quick, extra.get(name, []))
        failures += code != 0
        print(f"[report] {script}: exit {code} in {seconds:.0f} s", flush=True)
        command = f"python benchmarks/{script}" + (" --quick" if args.quick else "")
        command += "".join(f" {shlex.quote(a)}" for a in extra.get(name, []))
        lines = [f"## {name}: {what}", "", f"`{command}` — exit {code}, {seconds:.0f} s", ""]
        png = args.results / f"{name}.png"
        if png.exists():
            shutil.copyfile(png, images / png.name)
            lines += [f"![{name}](benchmarks/{png.name})", ""]
        lines += ["```text", out.rstrip(), "```", ""]
        sections.append((name, "\n".join(lines)))
    if args.update and doc.exists():
        doc.write_text(merge_sections(doc.read_text(), sections, started, design))
        print(f"[report] updated {doc} ({failures} script(s) failed)")
        return 1 if failures else 0
    sections = [text for _, text in sections]
    header = [
        "# stackjax performance report",
        "",
        f"Generated by `python benchmarks/report.py{' --quick' if args.quick else ''}` on "
        f"{started}: {platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}"
        + (f", load average at start {load[0]:.1f}" if load else "")
        + ". Each script prints its device line first; absolute times depend on the machine "
        "and its load, the ratios are measured side by side in one run.",
        "",
    ]
    doc.write_text("\n".join(header + sections + [DESIGN]))
    print(f"[report] wrote {doc} and {images}/ ({failures} script(s) failed)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
