"""Checkpoints are resumed exactly or refused naming the file and the fix."""

import json

import jax
import numpy as np
import pytest

import stackjax as sj
from stackjax._checkpoint import _sha256

CONFIG = sj.SolverConfig(
    adam=sj.AdamConfig(steps=10, batch_size=32), gauss_newton=sj.GaussNewtonConfig(steps=0)
)
#: `solve`'s loop arguments: two chunks of 5 steps, no diagnostics, silent.
LOOP = {"chunk_size": 5, "diagnostic_points": 0, "verbose": False}


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """A finished 10-step run's checkpoint (copied per test)."""
    directory = tmp_path_factory.mktemp("written")
    sj.solve(sj.examples.scalar_game(), jax.random.key(0), CONFIG, checkpoint_dir=directory, **LOOP)
    return directory


def _copy(src, dst):
    dst.mkdir()
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    return dst


@pytest.mark.slow
def test_a_larger_step_budget_continues(written, tmp_path):
    directory = _copy(written, tmp_path / "c")
    config = CONFIG.replace(adam=CONFIG.adam.replace(steps=20))
    longer = sj.solve(
        sj.examples.scalar_game(), jax.random.key(0), config, checkpoint_dir=directory, **LOOP
    )
    assert int(longer.state.step) == 20 and longer.history["loss"].shape == (20,)


@pytest.mark.parametrize("damage", ["missing", "tampered", "meta", "nonfinite"])
def test_damaged_checkpoints_are_refused(written, tmp_path, damage):
    directory = _copy(written, tmp_path / "c")
    state = directory / "state.npz"
    if damage == "missing":
        (directory / "history.npz").unlink()
        match = "history.npz"
    elif damage == "tampered":
        state.write_bytes(state.read_bytes()[:-8] + b"\0" * 8)
        match = "state.npz"
    elif damage == "meta":
        (directory / "meta.json").write_text("{not json")
        match = "meta.json"
    else:
        arrays = dict(np.load(state))
        name = next(k for k in arrays if "params" in k)
        arrays[name] = np.full_like(arrays[name], np.nan)
        np.savez(state, **arrays)
        meta = json.loads((directory / "meta.json").read_text())
        meta["sha256"]["state.npz"] = _sha256(str(state))
        (directory / "meta.json").write_text(json.dumps(meta))
        match = "non-finite"
    with pytest.raises(ValueError, match=match):
        sj.solve(
            sj.examples.scalar_game(), jax.random.key(0), CONFIG, checkpoint_dir=directory, **LOOP
        )


@pytest.mark.slow
def test_a_refined_checkpoint_refuses_more_adam_steps_and_continues_the_refinement(tmp_path):
    """After its Gauss-Newton refinement a checkpoint holds refined parameters: a larger Adam
    budget is refused naming the directory and the fix; a larger Gauss-Newton budget continues
    the refinement from where it stopped."""
    config = CONFIG.replace(gauss_newton=sj.GaussNewtonConfig(steps=2, batch_size=32))
    game, key = sj.examples.scalar_game(), jax.random.key(0)
    first = sj.solve(game, key, config, checkpoint_dir=tmp_path, **LOOP)
    assert int(first.state.refine_step) == 2
    more_adam = config.replace(adam=config.adam.replace(steps=20))
    with pytest.raises(ValueError, match=f"{tmp_path}.*AdamConfig\\(steps=10\\)"):
        sj.solve(game, key, more_adam, checkpoint_dir=tmp_path, **LOOP)
    more_gn = config.replace(gauss_newton=config.gauss_newton.replace(steps=3))
    longer = sj.solve(game, key, more_gn, checkpoint_dir=tmp_path, **LOOP)
    assert int(longer.state.step) == 10 and int(longer.state.refine_step) == 3
    assert longer.history["refine_loss"].shape == (3,)
