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


def _two(leader, follower):
    """A per-player scalar symbol [2, m = 1, 1, 1]."""
    return np.array([leader, follower], float).reshape(2, 1, 1, 1)


def _one_regime(**changes):
    """The scalar game's calm regime alone (m = 1, d = 1), with ``changes`` to its symbols."""
    symbols = dict(
        T=1.0, Gamma=[[0.0]], A=[[[-0.3]]], B1=[[[1.0]]], B2=[[[0.5]]], b=[[0.1]],
        C=[[[[0.2]]]], s=[[[0.3]]], Q=_two(1.0, 0.5), R11=_two(1.0, 0.2), R12=_two(0.0, 0.3),
        R22=_two(0.5, 1.0), G=_two(1.0, 0.5), lam=(0.5, 0.5), x0=[1.0],
    )  # fmt: skip
    return sj.make_lq_game(**{**symbols, **changes})


# Edge cases (d = 1 throughout), solved with the default configuration.
EDGES = {
    "one regime": _one_regime(),
    "temperature 0": BASE.replace_temperatures([0.0, 0.0]),
    "temperature 1e-8": BASE.replace_temperatures([1e-8, 1e-8]),
    "temperature 1e3": BASE.replace_temperatures([1e3, 1e3]),
    "horizon 1e-4": BASE.replace(T=jnp.asarray(1e-4)),
    "horizon 50": BASE.replace(T=jnp.asarray(50.0)),
    "generator rates 1e3": BASE.replace(Gamma=1e3 * BASE.Gamma),
}


# Games whose coupled Riccati system has no solution on [0, T], so no equilibrium to approach.
NO_SOLUTION = {
    # The leader is paid for large states (Q < 0) and steers them cheaply: P_1 escapes to
    # -infinity before t = 0.
    "finite escape": _one_regime(
        T=5.0, A=[[[0.5]]], B2=[[[0.0]]], b=[[0.0]], C=[[[[0.0]]]], s=[[[0.1]]],
        Q=_two(-4.0, 0.0), R12=_two(0.0, 0.0), R22=_two(0.0, 1.0), G=_two(0.0, 0.0),
        lam=(0.1, 0.1),
    ),
    # The leader's control enters the noise only: Rt11 = R11 + D1^2 P_1 turns negative once
    # P_1 < -R11 / D1^2 (parabolicity lost along the solution, not at T).
    "lost parabolicity": _one_regime(
        A=[[[0.0]]], B1=[[[0.0]]], B2=[[[1.0]]], b=[[0.0]], C=[[[[0.0]]]], D1=[[[[1.0]]]],
        Q=_two(-2.0, 1.0), R11=_two(0.5, 0.1), R12=_two(0.0, 0.0), R22=_two(0.5, 0.5),
        G=_two(0.0, 0.0), lam=(0.1, 0.1),
    ),
}  # fmt: skip


def _solve_recording(game, config=None, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        solution = sj.solve(game, jax.random.key(0), config, verbose=False, **kwargs)
    return solution, [w.category for w in caught]


@pytest.mark.slow
@pytest.mark.long_loops
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
@pytest.mark.parametrize("name", list(NO_SOLUTION))
def test_game_without_an_equilibrium_is_flagged(name):
    """No Riccati solution exists (the reference refuses), and `solve` does not return its
    networks silently: an `AccuracyWarning` with an indicator above the threshold."""
    game = NO_SOLUTION[name]
    with pytest.raises(ValueError, match="no solution on|WP-L"):
        sj.riccati_reference(game)
    solution, categories = _solve_recording(game)
    assert sj.AccuracyWarning in categories, (name, categories)
    assert float(np.max(solution.diagnostics["error_indicator"])) > 1e-2


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
