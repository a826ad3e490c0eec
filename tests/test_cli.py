"""The command line's main job: values printed match the Riccati reference; plot written."""

import re

import jax
import numpy as np
import pytest

import stackjax as sj
from stackjax.cli import main


@pytest.mark.slow
def test_riccati_command_prints_values_monte_carlo_and_writes_plot(tmp_path, capsys):
    code = main(["riccati", "--example", "cross-term", "--paths", "3000", "--steps", "40",
                 "--num-times", "11", "--out", str(tmp_path)])  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    game = sj.examples.cross_term_game()
    values = np.asarray(sj.riccati_reference(game, num_times=11).value(0.0, game.x0))
    for i in range(game.num_regimes):
        row = re.search(rf"^regime {i}\s+(\S+)\s+(\S+)\s*$", out, re.MULTILINE)
        np.testing.assert_allclose(
            [float(row.group(1)), float(row.group(2))], values[:, i], atol=1e-6
        )
    z_scores = [float(z) for z in re.findall(r"\s([+-]\d+\.\d+)\s+(?:ok|CHECK)", out)]
    assert len(z_scores) == 2 * game.num_regimes
    assert max(abs(z) for z in z_scores) < 4.0
    assert (tmp_path / "riccati_cross-term.png").stat().st_size > 10_000
    assert jax.config.jax_enable_x64


@pytest.mark.slow
def test_solve_command_trains_compares_with_riccati_and_writes_plots(tmp_path, capsys):
    # The README's main job (default solver: Gauss-Newton only for this LQ game), fewer paths.
    code = main(["solve", "--example", "random", "--dim", "2", "--regimes", "2",
                 "--paths", "500", "--out", str(tmp_path)])  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    rows = re.findall(
        r"^regime (\d)\s+(leader|follower)\s+(\S+)\s+(\S+)\s+(\S+)\s*$", out, re.MULTILINE
    )
    assert len(rows) == 4  # 2 regimes x 2 players
    errors = np.array([[float(v) for v in row[2:]] for row in rows])  # value, policy mean, at x0
    assert np.all(np.isfinite(errors))
    assert errors[:, 0].max() < 5e-2, out
    assert errors[:, 1].max() < 1e-1, out
    z_scores = [
        float(z) for z in re.findall(r"\s([+-]\d+\.\d+)\s+(?:ok|CHECK)\s*$", out, re.MULTILINE)
    ]
    assert len(z_scores) == 4
    assert np.all(np.isfinite(z_scores))
    assert "wall" in out
    assert (tmp_path / "solve_random.png").stat().st_size > 10_000
    assert (tmp_path / "solve_random_history.png").stat().st_size > 10_000


def test_solve_command_rejects_dimensions_contradicting_a_fixed_example(capsys):
    assert main(["solve", "--example", "scalar", "--dim", "3"]) == 2
    assert "fixed --dim 1" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, name",
    [
        (["solve", "--paths", "0"], "--paths"),
        (["solve", "--steps", "-5"], "--steps"),
        (["solve", "--dim", "x"], "--dim"),
        (["riccati", "--steps", "0"], "--steps"),
        (["riccati", "--num-times", "1"], "--num-times"),
        (["solve", "--game", "no-such-file.npz"], "--game"),
        (["solve", "--example", "nope"], "--example"),
    ],
)
def test_bad_arguments_exit_2_with_one_line_before_any_work(argv, name, capsys):
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip()
    assert name in err and len(err.splitlines()) == 1, err


@pytest.mark.slow
def test_solve_command_takes_a_saved_game(tmp_path, capsys):
    path = tmp_path / "scalar.npz"
    sj.examples.scalar_game().save(path)
    code = main(["solve", "--game", str(path), "--paths", "200", "--quiet",
                 "--out", str(tmp_path)])  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert "[stackjax.solve]" not in out  # --quiet: no progress lines
    rows = re.findall(r"^regime (\d)\s+(leader|follower)\s+(\S+)\s+(\S+)", out, re.MULTILINE)
    assert len(rows) == 4
    assert max(float(r[2]) for r in rows) < 1e-2, out
    assert (tmp_path / "solve_scalar.png").stat().st_size > 10_000


@pytest.mark.slow
def test_console_command_fills_the_persistent_compilation_cache(tmp_path):
    """``python -m stackjax`` (the console entry) stores compiled programs in the cache
    directory; ``STACKJAX_NO_CACHE=1`` turns it off."""
    import os
    import subprocess
    import sys

    argv = [sys.executable, "-m", "stackjax", "riccati", "--example", "scalar", "--paths", "100",
            "--steps", "10", "--num-times", "11", "--out", str(tmp_path / "out")]  # fmt: skip
    for off in (False, True):
        cache = tmp_path / f"cache-{off}"
        env = {**os.environ, "STACKJAX_CACHE_DIR": str(cache), "MPLBACKEND": "Agg"}
        if off:
            env["STACKJAX_NO_CACHE"] = "1"
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr
        entries = list(cache.rglob("*")) if cache.exists() else []
        assert (len(entries) == 0) == off, entries
