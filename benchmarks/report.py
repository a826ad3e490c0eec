"""Regenerates the performance report: runs every benchmark script, one after the other, and
writes ``docs/performance.md`` (each script's printed tables, the device and the command line)
with the scripts' plots copied to ``docs/benchmarks/``.

The README's "Performance" section quotes this report. Run::

    python benchmarks/report.py                  # every script, full settings (~2-3 h on 2 cores)
    python benchmarks/report.py --quick          # every script's --quick mode (~5 min)
    python benchmarks/report.py --only dimension accuracy --args accuracy="--skip-table"
    python benchmarks/report.py --only dimension --update   # replace one section, keep the rest

The scripts run one at a time in fresh interpreters (each configures JAX itself), so their
timings do not disturb each other; each script's own interleaving makes its ratios
comparable within a run. A failing script is reported in the document and in the exit code;
the others still run.
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
    ("dimension", "dimension.py", "training-step cost against d per second-order operator"),
    ("deepxde_compare", "baselines/deepxde_compare.py", "stackjax vs DeepXDE (PyTorch)"),
    ("finite_difference", "baselines/finite_difference.py", "stackjax vs a grid solver"),
    ("riccati", "riccati.py", "Riccati reference vs scipy solve_ivp"),
    ("discrete_qse", "discrete_qse.py", "discrete quantal Stackelberg equilibria vs scipy"),
)


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


def merge_sections(old: str, sections: list[tuple[str, str]], started: str) -> str:
    """``old`` report with the ``## name:`` sections of ``sections`` replaced (or appended).

    The header gets a line saying which sections were regenerated when; the other sections
    are kept as they were.
    """
    parts = old.split("\n## ")
    header, body = parts[0], parts[1:]
    named = [(part.split(":", 1)[0], "## " + part) for part in body]
    new = dict(sections)
    merged = [new.pop(name, text).rstrip("\n") + "\n" for name, text in named]
    merged += [new[name].rstrip("\n") + "\n" for name, _ in sections if name in new]
    note = f"Sections {', '.join(n for n, _ in sections)} regenerated on {started}."
    return header.rstrip("\n") + "\n\n" + note + "\n\n" + "\n".join(merged)


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
    parser.add_argument("--docs", type=Path, default=ROOT / "docs", help="output folder")
    parser.add_argument("--results", type=Path, default=BENCH / "results", help="JSON folder")
    args = parser.parse_args(argv)
    extra = {}
    for item in args.args:
        name, _, value = item.partition("=")
        extra[name] = shlex.split(value)
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
    doc = args.docs / ("performance_quick.md" if args.quick else "performance.md")
    if args.update and doc.exists():
        doc.write_text(merge_sections(doc.read_text(), sections, started))
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
    doc.write_text("\n".join(header + sections))
    print(f"[report] wrote {doc} and {images}/ ({failures} script(s) failed)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
