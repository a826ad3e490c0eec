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

import pytest

from stackjax._xla_flags import LOOP_LEVEL_VARIABLE

ROOT = pathlib.Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"


def _run(script: str, out: pathlib.Path, *extra: str, short_loops: bool = False) -> str:
    """Runs ``script --quick``; ``short_loops``: its loops run a few steps, so they are compiled
    at LLVM level 0 like the rest (tests/_loops.py)."""
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONPATH=str(ROOT))
    if short_loops:
        env[LOOP_LEVEL_VARIABLE] = "0"
    # The scripts configure JAX themselves; only the tests' compile setting (conftest) is kept.
    env["XLA_FLAGS"] = "--xla_backend_optimization_level=0"
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


@pytest.mark.slow
def test_riccati_quick_agrees_with_scipy(tmp_path):
    """stackjax's Riccati solve and scipy's DOP853 on the same system agree to 1e-8 relative."""
    _run("riccati.py", tmp_path)
    records = _records(tmp_path / "riccati.json")
    assert records, "no records written"
    for rec in records:
        assert rec["rel_diff_numpy"] < 1e-8 and rec["rel_diff_jaxrhs"] < 1e-8, rec
    assert (tmp_path / "riccati.png").stat().st_size > 0


@pytest.mark.slow
def test_compile_quick_compares_settings_on_the_same_result(tmp_path):
    """Both XLA settings give the same Riccati value (to 1e-12 relative) and positive times."""
    _run("compile.py", tmp_path)
    records = _records(tmp_path / "compile.json")
    assert {r["setting"] for r in records} == {"stackjax + O0", "fusion-emitters + O0"}, records
    values = [r["result"] for r in records]
    assert max(values) - min(values) <= 1e-12 * abs(values[0]), values
    assert all(r["first_s"] > r["second_s"] > 0 for r in records), records


@pytest.mark.slow
def test_discrete_qse_quick_agrees_with_scipy(tmp_path):
    """Batched QSE matches the per-game scipy multistart optimum (never worse than 1e-6)."""
    _run("discrete_qse.py", tmp_path)
    (rec,) = _records(tmp_path / "discrete_qse.json")
    assert rec["max_scipy_minus_jax_value"] < 1e-6, rec
    assert rec["jax_games_per_second"] > 0


@pytest.mark.slow
def test_dimension_quick_exact_operator_matches_hessian_reference(tmp_path):
    """All three second-order modes run; the default exact operator's residuals equal the
    ``jax.hessian`` reference on the same batch (float32 round-off), the sketch's are close."""
    _run("dimension.py", tmp_path, short_loops=True)
    all_records = _records(tmp_path / "dimension.json")
    records = {r["mode"]: r for r in all_records if r.get("kind") != "gauss_newton"}
    assert set(records) == {"hessian", "hvp", "hutchinson"}, records
    for rec in records.values():
        assert "skipped" not in rec, rec
        assert rec["step_s"] > 0 and rec["flops"] > 0 and rec["memory_bytes"]["peak"] > 0, rec
    assert records["hvp"]["residual_rel_diff_vs_hessian"] < 1e-5, records["hvp"]
    # Rademacher sketch with 2 probes of an n = 4 column diffusion: unbiased, O(1) error.
    assert records["hutchinson"]["residual_rel_diff_vs_hessian"] < 1.0, records["hutchinson"]
    assert (tmp_path / "dimension.png").stat().st_size > 0
    # Gauss-Newton iteration: its FLOPs (counted on the CG-unrolled iteration) exceed the CG
    # matvecs alone, since it also linearises, probes the Jacobi diagonal and re-evaluates,
    # and agree with the independent estimate "1-CG iteration + (CG - 1) standalone
    # matvecs" to 5 % (XLA counts a loop body once; measured 0.06 % apart at d = 4, 0.1 % at 100).
    (gn,) = [r for r in all_records if r.get("kind") == "gauss_newton"]
    assert "skipped" not in gn, gn
    assert gn["flops"] > gn["cg_iterations"] * gn["matvec_flops"] > 0, gn
    assert abs(gn["flops_estimate"] / gn["flops"] - 1) < 0.05, gn
    assert 0 < gn["matvec_s"] < gn["step_s"], gn


@pytest.mark.slow
def test_accuracy_quick_meets_scalar_target_against_riccati(tmp_path):
    """The neural solver on the scalar game meets the accuracy table's target (value <= 1e-3, policy mean
    <= 5e-3 against Riccati) with the default configuration; the short-configuration scaling
    run records a decreasing error curve and a time to 1e-2."""
    _run("accuracy.py", tmp_path)
    records = _records(tmp_path / "accuracy.json")
    (table,) = [r for r in records if r.get("kind") == "table"]
    assert table["value_error"] <= 1e-3 and table["mean_error"] <= 5e-3, table
    scaling = [r for r in records if r.get("kind") == "scaling"]
    assert {(r["d"], r["m"]) for r in scaling} == {(1, 1)}
    for rec in scaling:
        assert rec["final_value_error"] < 1e-2, rec
        assert rec["final_value_error"] < rec["value_error"][0], rec
        assert 0 < rec["time_to_0.01"] <= rec["seconds"][-1], rec


@pytest.mark.slow
def test_finite_difference_quick_grid_converges_to_riccati(tmp_path):
    """The grid baseline solves the same coupled HJB system: exact on quadratics with the
    quadratic boundary (RK4 error only), and the linear-boundary error falls under refinement."""
    _run("baselines/finite_difference.py", tmp_path)
    records = _records(tmp_path / "finite_difference.json")
    grids = [r for r in records if r.get("method") == "grid"]
    (quad,) = [r for r in grids if r["boundary"] == "quadratic"]
    assert quad["max_error"] < 1e-4, quad
    linear = sorted((r for r in grids if r["boundary"] == "linear"), key=lambda r: r["num_points"])
    assert len(linear) >= 2
    assert linear[-1]["max_error"] < linear[0]["max_error"] < 0.1, linear


@pytest.mark.slow
def test_deepxde_compare_quick_poses_the_same_system(tmp_path):
    """DeepXDE's residual (torch) reproduces stackjax's at the Riccati value and with copied
    weights (when the bench extra is installed, as in CI); both JAX trainings run and learn."""
    _run("baselines/deepxde_compare.py", tmp_path, short_loops=True)
    (rec,) = _records(tmp_path / "deepxde_compare.json")
    if rec["deepxde"]:
        check = rec["check"]
        assert check["riccati"]["torch_vs_stackjax"] <= 1e-10, check
        assert check["mlp"]["residual_diff"] <= 1e-10, check
    methods = {"sj-default", "sj-mlp"} | ({"deepxde"} if rec["deepxde"] else set())
    assert methods <= set(rec["step"]["step_seconds"]), rec["step"]
    histories = rec["accuracy"]["histories"]
    for name in methods:  # errors against Riccati: all three learn from the same start
        hist = histories[name]
        assert hist[-1]["step"] >= 100 and hist[-1]["max_error"] < hist[0]["max_error"], hist


@pytest.mark.slow
def test_robustness_quick_slice_is_accurate_or_flagged(tmp_path):
    """The CI slice of the held-out family (d = 2, 3; default solve against Riccati): every
    game is within the targets or `solve` warned, and every game whose value or V(0, x0) error
    exceeds 1e-2 was flagged by the error indicator."""
    _run("robustness.py", tmp_path)
    records = _records(tmp_path / "robustness.json")
    games = [r for r in records if r.get("kind") == "game"]
    assert [r["d"] for r in games] == [2, 3]
    for r in games:
        assert r["within_targets"] or r["warned"], r
        if max(r["value_error"], r["x0_error"]) > 1e-2:
            assert r["warned"] and r["indicator"] > 1e-2, r
    (summary_d2,) = [r for r in records if r.get("kind") == "summary" and r["d"] == 2]
    assert summary_d2["above_1e-2_flagged"] == summary_d2["above_1e-2"]
    assert (tmp_path / "robustness.png").stat().st_size > 10_000


def test_report_update_replaces_only_the_chosen_sections():
    """`report.py --only NAME --update` swaps NAME's section of an existing report, keeps the
    other sections and their order, appends new ones, and says what was regenerated."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from report import merge_sections
    finally:
        sys.path.pop(0)
    old = "# report\n\nheader\n\n## accuracy: a\n\nA1\n\n## dimension: b\n\nB1\n\n## riccati: c\n\nC1\n"
    new = merge_sections(
        old, [("dimension", "## dimension: b\n\nB2\n"), ("extra", "## extra: e\n\nE\n")], "NOW"
    )
    assert new.index("A1") < new.index("B2") < new.index("C1") < new.index("E")
    assert "B1" not in new and "Sections dimension, extra regenerated on NOW." in new


def test_report_rewrites_the_design_section_on_every_merge():
    """The "design" section (`report.DESIGN`, cited by the code) is kept by every ``--update``
    and rewritten by ``--design`` without a "regenerated" line."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from report import DESIGN, merge_sections
    finally:
        sys.path.pop(0)
    old = "# report\n\nheader\n\n## accuracy: a\n\nA1\n"
    design = [("design", DESIGN)]
    once = merge_sections(old, [], "NOW", design)
    assert once.endswith(DESIGN) and "regenerated" not in once and "A1" in once
    twice = merge_sections(once, [("accuracy", "## accuracy: a\n\nA2\n")], "LATER", design)
    assert twice.count("## design:") == 1 and twice.index("A2") < twice.index("## design:")
    assert "A1" not in twice and "Sections accuracy regenerated on LATER." in twice


@pytest.mark.slow
def test_marl_quick_contextual_reaches_exact_values(tmp_path):
    """Contextual design reaches the enumerated Stackelberg value on every quick game and seed;
    the jitted pipeline outruns the NumPy loop of the same pipeline."""
    _run("marl.py", tmp_path, short_loops=True)
    (rec,) = _records(tmp_path / "marl.json")
    assert all(all(row) for row in rec["designs"]["contextual"]["success"]), rec["designs"]
    assert rec["targets"][0] == 6.0  # prisoners' dilemma: the reference repository's threshold
    assert rec["speedup"] > 1
    assert (tmp_path / "marl.png").stat().st_size > 0
