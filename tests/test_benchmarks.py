"""Every benchmark script's ``--quick`` mode runs in CI (so the scripts never rot), and the
numbers it measures against an independent baseline agree with it.

Each script runs in a fresh interpreter (the scripts configure JAX themselves), writing into a
temporary directory; the JSON they write is checked here.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"


def _run(script: str, out: pathlib.Path, *extra: str) -> str:
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONPATH=str(ROOT))
    env.pop("XLA_FLAGS", None)
    proc = subprocess.run(
        [sys.executable, str(BENCH / script), "--quick", "--out", str(out), *extra],
        capture_output=True, text=True, env=env, timeout=600, cwd=str(ROOT),
    )  # fmt: skip
    assert proc.returncode == 0, f"{script} --quick failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def _records(path: pathlib.Path) -> list[dict]:
    text = path.read_text().strip()
    if text.startswith("{") and "\n{" not in text:
        return [json.loads(text)]
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_riccati_quick_agrees_with_scipy(tmp_path):
    """stackjax's Riccati solve and scipy's DOP853 on the same system agree to 1e-8 relative."""
    _run("riccati.py", tmp_path)
    records = _records(tmp_path / "riccati.json")
    assert records, "no records written"
    for rec in records:
        assert rec["rel_diff_numpy"] < 1e-8 and rec["rel_diff_jaxrhs"] < 1e-8, rec
    assert (tmp_path / "riccati.png").stat().st_size > 0


def test_discrete_qse_quick_agrees_with_scipy(tmp_path):
    """Batched QSE matches the per-game scipy multistart optimum (never worse than 1e-6)."""
    _run("discrete_qse.py", tmp_path)
    (rec,) = _records(tmp_path / "discrete_qse.json")
    assert rec["max_scipy_minus_jax_value"] < 1e-6, rec
    assert rec["jax_games_per_second"] > 0
