"""`Solution` diagnostics: the error indicators against Riccati errors, and `solve`'s
`AccuracyWarning` on edge cases (each either solved to 1e-2 or flagged)."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import stackjax as sj
from stackjax.examples import scalar_game

BASE = scalar_game()

# Edge cases of the scalar game, solved with the default configuration.
EDGES = {
    "temperature 0": BASE.replace_temperatures([0.0, 0.0]),
    "temperature 1e-8": BASE.replace_temperatures([1e-8, 1e-8]),
    "temperature 1e3": BASE.replace_temperatures([1e3, 1e3]),
    "horizon 1e-4": BASE.replace(T=jnp.asarray(1e-4)),
    "horizon 50": BASE.replace(T=jnp.asarray(50.0)),
    "generator rates 1e3": BASE.replace(Gamma=1e3 * BASE.Gamma),
}


def _solve_recording(game, config=None, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        solution = sj.solve(game, jax.random.key(0), config, verbose=False, **kwargs)
    return solution, [w.category for w in caught]


@pytest.mark.slow
@pytest.mark.parametrize("name", list(EDGES))
def test_edge_case_is_solved_to_1e_2_or_flagged(name):
    """Either the worst relative L2 value error and the worst error at (0, x0) against Riccati
    are <= 1e-2, or `solve` issued an `AccuracyWarning`; and the indicator agrees with the
    outcome (above the threshold exactly when the warning was issued)."""
    game = EDGES[name]
    solution, categories = _solve_recording(game)
    err = sj.evaluate(solution, sj.riccati_reference(game), jax.random.key(1), num_points=1024)
    worst = max(float(np.max(err["value"])), float(np.max(err["value_at_x0"])))
    warned = sj.AccuracyWarning in categories
    assert worst <= 1e-2 or warned, (name, worst, solution.diagnostics)
    indicator = max(
        float(np.max(solution.diagnostics["error_indicator"])),
        float(np.max(solution.diagnostics["error_indicator_x0"])),
    )
    assert warned == (indicator > 1e-2), (name, indicator, categories)


@pytest.mark.slow
def test_undertrained_solution_warns_and_its_indicator_exceeds_its_error(tiny):
    """20 Adam steps: a relative error of order 0.1-1, an indicator at least as large, and an
    `AccuracyWarning` naming the indicator."""
    with pytest.warns(sj.AccuracyWarning, match="error_indicator"):
        solution = sj.solve(BASE, jax.random.key(0), tiny, chunk_size=10, verbose=False)
    err = sj.evaluate(solution, sj.riccati_reference(BASE), jax.random.key(1), num_points=1024)
    assert float(np.max(err["value"])) > 1e-2  # really inaccurate
    assert np.max(solution.diagnostics["error_indicator"]) >= np.max(err["value"])
    assert np.max(solution.diagnostics["error_indicator_x0"]) >= np.max(err["value_at_x0"])


def test_diagnostics_shapes_and_solution_diagnostics_matches_solve(tiny):
    """Every diagnostic `solve` stores has its documented shape; `solution_diagnostics` on
    other points gives an indicator of the same order."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sj.AccuracyWarning)
        solution = sj.solve(
            BASE, jax.random.key(0), tiny, chunk_size=10, verbose=False, diagnostic_points=32
        )
    m = BASE.num_regimes
    diag = solution.diagnostics
    for name in ("error_indicator", "error_indicator_x0", "residual_rms", "residual_relative"):
        assert diag[name].shape == (2, m), name
    assert diag["parabolicity_min"].shape == (m,)
    again = sj.solution_diagnostics(solution, jax.random.key(5), num_points=32)
    assert set(again) <= set(diag)
    # Another key: other points, the same order of magnitude.
    ratio = np.asarray(again["error_indicator"]) / np.asarray(diag["error_indicator"])
    assert np.all((ratio > 0.2) & (ratio < 5.0)), ratio
