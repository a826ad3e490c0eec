"""The command line's main job: values printed match the Riccati reference; plot written."""

import re

import jax
import numpy as np

import stackjax as sj
from stackjax.cli import main


def test_riccati_command_prints_values_monte_carlo_and_writes_plot(tmp_path, capsys):
    code = main(["riccati", "--example", "cross-term", "--paths", "3000", "--steps", "40",
                 "--num-times", "11", "--out", str(tmp_path)])  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    game = sj.examples.cross_term_game()
    values = np.asarray(sj.riccati_reference(game, num_times=11).value(0.0, game.x0))
    for i in range(game.num_regimes):
        row = re.search(rf"^regime {i}\s+(\S+)\s+(\S+)\s*$", out, re.MULTILINE)
        np.testing.assert_allclose([float(row.group(1)), float(row.group(2))], values[:, i], atol=1e-6)
    z_scores = [float(z) for z in re.findall(r"\s([+-]\d+\.\d+)\s+(?:ok|CHECK)", out)]
    assert len(z_scores) == 2 * game.num_regimes
    assert max(abs(z) for z in z_scores) < 4.0
    assert (tmp_path / "riccati_cross-term.png").stat().st_size > 10_000
    assert jax.config.jax_enable_x64
