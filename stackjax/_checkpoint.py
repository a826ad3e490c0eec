"""Save and restore solver states (``.npz``, atomic writes) for exact resumption.

A checkpoint directory holds ``state.npz`` (every leaf of the `TrainState`, keyed by its tree
path), ``history.npz`` (per-step losses so far) and ``meta.json`` (step, the key the run was
started with, the solver settings). Restoring needs a template state of the same structure
(from the solver's ``init``), so the tree structure never has to be pickled (nothing is
unpickled). Typed PRNG keys are stored as their raw key data. ``meta.json`` records the SHA-256
of both array files: a checkpoint is resumed exactly or refused with a message naming the file
and the fix, never silently restarted over.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile

import jax
import numpy as np

__all__ = ["save_checkpoint", "restore_checkpoint", "has_checkpoint"]

_STATE, _HISTORY, _META = "state.npz", "history.npz", "meta.json"


def _flatten(tree) -> dict[str, np.ndarray]:
    out = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        name = jax.tree_util.keystr(path)
        if jax.dtypes.issubdtype(getattr(leaf, "dtype", None), jax.dtypes.prng_key):
            leaf = jax.random.key_data(leaf)
        out[name] = np.asarray(leaf)
    return out


def _atomic_savez(path: str, arrays: dict[str, np.ndarray]) -> None:
    directory = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(dir=directory, suffix=".tmp.npz")
    os.close(fd)
    try:
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def has_checkpoint(directory) -> bool:
    """Whether ``directory`` holds a checkpoint (``ValueError`` if it holds part of one)."""
    if directory is None:
        return False
    present = [os.path.exists(os.path.join(directory, n)) for n in (_STATE, _HISTORY, _META)]
    if any(present) and not all(present):
        missing = [n for n, p in zip((_STATE, _HISTORY, _META), present, strict=True) if not p]
        raise ValueError(
            f"The checkpoint in {os.fspath(directory)!r} is incomplete: {missing} missing. Fix: "
            "restore the missing files, or point `checkpoint_dir` to an empty directory (or "
            "delete this one) to start afresh."
        )
    return all(present)


def save_checkpoint(directory, state, history: dict, *, key_data, settings: str) -> None:
    """Writes ``state`` (a pytree), ``history`` (dict of arrays) and metadata to ``directory``.

    Args:
      directory: created if missing.
      state: the training state pytree.
      history: dict of numpy-convertible arrays (losses so far).
      key_data: raw data of the run's PRNG key (checked when resuming).
      settings: ``repr`` of the solver settings (checked when resuming).
    """
    directory = os.fspath(directory)
    os.makedirs(directory, exist_ok=True)
    _atomic_savez(os.path.join(directory, _STATE), _flatten(state))
    _atomic_savez(os.path.join(directory, _HISTORY), {k: np.asarray(v) for k, v in history.items()})
    meta = {
        "step": int(np.asarray(state.step)),
        "key_data": np.asarray(key_data).tolist(),
        "settings": settings,
        "sha256": {n: _sha256(os.path.join(directory, n)) for n in (_STATE, _HISTORY)},
    }
    fd, tmp = tempfile.mkstemp(dir=directory, suffix=".tmp.json")
    with os.fdopen(fd, "w") as f:
        json.dump(meta, f)
    os.replace(tmp, os.path.join(directory, _META))


def restore_checkpoint(directory, template, *, key_data, settings: str):
    """Reads a checkpoint written by `save_checkpoint` into the structure of ``template``.

    Raises:
      ValueError: if the checkpoint was written with another key, other solver settings, or
        for a state of another structure (names the mismatch and the fix).

    Returns:
      ``(state, history)``.
    """
    directory = os.fspath(directory)
    meta_path = os.path.join(directory, _META)
    try:
        with open(meta_path) as f:
            meta = json.load(f)
        meta["key_data"], meta["settings"], meta["sha256"]  # noqa: B018 - all three present
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(
            f"The checkpoint's {meta_path!r} is unreadable ({type(err).__name__}: {err}). Fix: "
            "use an empty `checkpoint_dir` to start afresh."
        ) from err
    for name in (_STATE, _HISTORY):
        if _sha256(os.path.join(directory, name)) != meta["sha256"].get(name):
            raise ValueError(
                f"The checkpoint file {os.path.join(directory, name)!r} does not match the hash "
                "recorded in meta.json (changed or damaged since it was written). Fix: use an "
                "empty `checkpoint_dir` to start afresh."
            )
    if np.asarray(meta["key_data"]).tolist() != np.asarray(key_data).tolist():
        raise ValueError(
            f"The checkpoint in {directory!r} was written by a run started with another key. "
            "Fix: pass the same key to resume, or use an empty `checkpoint_dir` to start afresh."
        )
    if meta["settings"] != settings:
        raise ValueError(
            f"The checkpoint in {directory!r} was written with other solver settings:\n"
            f"  checkpoint: {meta['settings']}\n  this run:   {settings}\n"
            "Fix: resume with the same SolverConfig (the step budgets may differ), or use an "
            "empty `checkpoint_dir`."
        )
    with np.load(os.path.join(directory, _STATE), allow_pickle=False) as data:
        stored = {k: data[k] for k in data.files}
    leaves_with_path, treedef = jax.tree_util.tree_flatten_with_path(template)
    leaves = []
    for path, leaf in leaves_with_path:
        name = jax.tree_util.keystr(path)
        if name not in stored:
            raise ValueError(
                f"The checkpoint in {directory!r} has no entry {name!r}: it was written for "
                "another model. Fix: use an empty `checkpoint_dir`."
            )
        value = stored[name]
        if jax.dtypes.issubdtype(getattr(leaf, "dtype", None), jax.dtypes.prng_key):
            leaves.append(jax.random.wrap_key_data(value, impl=jax.random.key_impl(leaf)))
            continue
        if value.shape != np.shape(leaf):
            raise ValueError(
                f"Checkpoint entry {name!r} has shape {value.shape}, the model expects "
                f"{np.shape(leaf)}. Fix: use an empty `checkpoint_dir`."
            )
        if np.issubdtype(value.dtype, np.floating):
            # inf is a valid best loss (none yet) and time scale (plain time map); NaN never.
            may_be_inf = ".best_loss" in name or ".norm.time_scale" in name
            if np.any(np.isnan(value)) or not (may_be_inf or np.all(np.isfinite(value))):
                raise ValueError(
                    f"Checkpoint entry {name!r} holds non-finite values. Fix: use an empty "
                    "`checkpoint_dir` to start afresh."
                )
        leaves.append(jax.numpy.asarray(value, dtype=leaf.dtype))
    state = jax.tree_util.tree_unflatten(treedef, leaves)
    with np.load(os.path.join(directory, _HISTORY), allow_pickle=False) as data:
        history = {k: data[k] for k in data.files}
    return state, history
