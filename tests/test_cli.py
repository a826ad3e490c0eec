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
def test_solve_command_trains_compares_with_riccati_and_writes_plots(tmp_path):
    """The README's main job on its game saved to a file: ``python -m stackjax solve --game
    FILE`` in a fresh process (float32, as a user runs it): one table row per player and regime
    with errors against Riccati within the goals, Monte Carlo z-scores, no progress lines with
    ``--quiet``, both plots, and compiled programs stored in the persistent cache directory."""
    import os
    import subprocess
    import sys

    path = tmp_path / "random.npz"  # the game of `--example random --dim 2 --regimes 2`
    sj.examples.random_game(jax.random.key(0), d=2, m=2).save(path)
    cache, out_dir = tmp_path / "cache", tmp_path / "out"
    argv = [sys.executable, "-m", "stackjax", "solve", "--game", str(path), "--paths", "500",
            "--quiet", "--out", str(out_dir)]  # fmt: skip
    env = {**os.environ, "STACKJAX_CACHE_DIR": str(cache), "MPLBACKEND": "Agg"}
    env.pop("STACKJAX_NO_CACHE", None)
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "[stackjax.solve]" not in out  # --quiet: no progress lines
    rows = re.findall(
        r"^regime (\d)\s+(leader|follower)\s+(\S+)\s+(\S+)\s+(\S+)\s*$", out, re.MULTILINE
    )
    assert len(rows) == 4, out  # 2 regimes x 2 players
    errors = np.array([[float(v) for v in row[2:]] for row in rows])  # value, policy mean, at x0
    assert errors[:, 0].max() < 1e-3, out  # the README's goal for this game
    assert errors[:, 1].max() < 1e-2, out
    z_scores = [
        float(z) for z in re.findall(r"\s([+-]\d+\.\d+)\s+(?:ok|CHECK)\s*$", out, re.MULTILINE)
    ]
    assert len(z_scores) == 4 and np.all(np.isfinite(z_scores)), out
    assert "wall" in out
    assert (out_dir / "solve_random.png").stat().st_size > 10_000
    assert (out_dir / "solve_random_history.png").stat().st_size > 10_000
    assert len(list(cache.rglob("*"))) > 0


def test_compilation_cache_is_off_with_the_environment_switch(tmp_path, monkeypatch):
    """``STACKJAX_NO_CACHE=1`` leaves JAX's cache setting alone; otherwise the directory is
    ``$STACKJAX_CACHE_DIR``."""
    from stackjax.cli import enable_compilation_cache

    names = ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs",
             "jax_persistent_cache_min_entry_size_bytes")  # fmt: skip
    saved = {name: getattr(jax.config, name) for name in names}
    before = saved["jax_compilation_cache_dir"]
    monkeypatch.setenv("STACKJAX_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("STACKJAX_NO_CACHE", "1")
    assert enable_compilation_cache() is None
    assert jax.config.jax_compilation_cache_dir == before and not (tmp_path / "cache").exists()
    monkeypatch.setenv("STACKJAX_NO_CACHE", "0")
    try:
        assert enable_compilation_cache() == str(tmp_path / "cache")
        assert jax.config.jax_compilation_cache_dir == str(tmp_path / "cache")
    finally:
        for name, value in saved.items():
            jax.config.update(name, value)
