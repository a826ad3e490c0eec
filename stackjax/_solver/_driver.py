"""`solve`: the driver of the neural solver (Adam chunks, Gauss-Newton, checks, history).

A short loop over the jitted pieces (`run_chunk`, `refine`): between chunks it prints
progress, records the history, checkpoints and checks against the Riccati reference. With
traced arguments (``jax.vmap`` over keys, ``jax.grad`` through the game) the same pieces run
without printing, checkpointing or early stopping; the result code stays traced.
"""

from __future__ import annotations

import functools
import time
import warnings
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from .._checkpoint import has_checkpoint, restore_checkpoint, save_checkpoint
from .._protocol import validate_game
from .._sampling import resample_by_residual, sample_on_policy, sample_points
from .._sharding import replicate
from .._validation import as_key, check_setting
from ._config import (
    AccuracyWarning,
    AdamConfig,
    GaussNewtonConfig,
    SolverConfig,
    TrainingDivergedWarning,
)
from ._defaults import (
    cast_game,
    detect_controlled,
    float_dtype,
    is_concrete,
    refine_iterations,
    resolve_config,
)
from ._gauss_newton import refine
from ._loop import initial_status, run_chunk
from ._solution import (
    ACCURACY_THRESHOLD,
    PLAYERS,
    Solution,
    _diagnostics,
    divergence_message,
)
from ._step import data_mesh, make_train_step
from ._value import NetworkValue, value_model

__all__ = ["print_progress", "solve"]


@functools.partial(jax.jit, static_argnames=("config", "controlled", "num_points"))
def _refresh_pool(config, controlled, params, norm, game, key, *, num_points):
    """On-policy states under the current policies and residual-adaptive points."""
    network = NetworkValue(
        params=jax.lax.stop_gradient(params), norm=norm, game=game,
        model=value_model(game, config), config=config, controlled=controlled,
    )  # fmt: skip
    sampler = config.sampler
    n_on = int(round(num_points * sampler.on_policy_fraction / (
        sampler.on_policy_fraction + sampler.adaptive_fraction)))  # fmt: skip
    n_ad = num_points - n_on
    k_on, k_cand, k_res, k_pick = jax.random.split(key, 4)
    parts_t, parts_x = [], []
    if n_on > 0:
        t_on, x_on = sample_on_policy(game, network.policy, k_on, n_on)
        parts_t.append(t_on)
        parts_x.append(x_on)
    if n_ad > 0:
        t_c, x_c = sample_points(
            game, k_cand, 4 * n_ad, scale=sampler.scale, distribution=sampler.distribution
        )
        r = jax.vmap(network.residual)(t_c, x_c, jax.random.split(k_res, t_c.shape[0]))
        size = jnp.sqrt(jnp.sum(r**2, axis=(1, 2)))
        t_a, x_a = resample_by_residual(t_c, x_c, size, k_pick, n_ad)
        parts_t.append(t_a)
        parts_x.append(x_a)
    return jnp.concatenate(parts_t), jnp.concatenate(parts_x)


def _reference_errors(solution: Solution, reference, key) -> dict:
    from .._evaluate import evaluate

    err = evaluate(solution, reference, key, num_points=1024)
    return {
        "value": np.asarray(err["value"]),
        "mean": np.stack([np.asarray(err["mean_leader"]), np.asarray(err["mean_follower"])]),
    }


def solve(
    game,
    key: jax.Array,
    config: SolverConfig | None = None,
    *,
    chunk_size: int = 500,
    verbose: bool = True,
    reference_every: int = 0,
    reference=None,
    checkpoint_every: int = 1,
    diagnostic_points: int = 256,
    checkpoint_dir=None,
    stop_at_step: int | None = None,
    progress: Callable[[str, dict], None] | None = None,
) -> Solution:
    """Trains value networks of both players in every regime on the HJB residuals (§5.3).

    Runs ``config.adam.steps`` steps of `make_train_step`'s ``train_step`` in jitted
    ``lax.scan`` chunks of ``chunk_size`` (step ``s`` uses the key ``fold_in(k_train, s)``, so
    the result does not depend on the chunking), then the Gauss-Newton refinement, prints
    progress between the jitted pieces and records the history. With ``checkpoint_dir`` the
    state is saved between chunks and an existing checkpoint there is resumed (same key and
    settings required); ``stop_at_step`` stops early (after checkpointing), as an interruption
    would.

    On divergence (see the module docstring) training stops, the last good state is kept and a
    `TrainingDivergedWarning` is issued; ``solution.diagnostics["diverged"]`` is set. When
    an error indicator of `solution_diagnostics` exceeds 1e-2 (a residual-implied relative value
    error, docs/math.md §9.4), an `AccuracyWarning` says so.

    Pure when called with traced arguments: under ``jax.vmap`` over keys or ``jax.grad`` with
    respect to the game's arrays the same chunks run without printing, checkpointing or early
    stopping (a diverged run then simply keeps its last good state).

    Args:
      game: an `LQGame` or any `ControlQuadraticGame`.
      key: PRNG key (consumed).
      config: `SolverConfig` (defaults if ``None``).
      chunk_size: Adam steps per jitted ``lax.scan`` chunk (progress lines between chunks).
      verbose: print progress (with `print_progress`, unless ``progress`` is given).
      reference_every: every this many chunks (and Gauss-Newton iteration), record the
        relative errors against ``reference`` (0 disables).
      reference: what to check against (``.value`` and ``.policy`` as for `evaluate`, e.g.
        an exact solution of a non-LQ game); default ``riccati_reference(game)`` for LQ
        games, none otherwise.
      checkpoint_every: with ``checkpoint_dir``, write the checkpoint every this many chunks.
      diagnostic_points: points of the residual and parabolicity diagnostics
        (`solution_diagnostics`; 0 skips them).
      checkpoint_dir: directory to checkpoint to and resume from (optional).
      stop_at_step: stop once this many Adam steps are done (optional).
      progress: ``progress(line, info)`` receives each progress line and its numbers
        (``phase``, ``step``, ``loss``, ``rate``, ...) between the jitted pieces; default
        `print_progress` when ``verbose``, nothing under tracing.

    Returns:
      `Solution`.
    """
    key = as_key(key)
    if reference is not None and not all(hasattr(reference, a) for a in ("value", "policy")):
        raise TypeError(
            "`reference` must have .value(t, x) and .policy(t, x) (a RiccatiSolution or an exact "
            f"solution), got {type(reference).__name__}. Fix: pass riccati_reference(game) or None."
        )
    for name, value, kind, low, optional in (
        ("chunk_size", chunk_size, "int", 1, False),
        ("verbose", verbose, "bool", None, False),
        ("reference_every", reference_every, "int", 0, False),
        ("checkpoint_every", checkpoint_every, "int", 1, False),
        ("diagnostic_points", diagnostic_points, "int", 0, False),
        ("stop_at_step", stop_at_step, "int", 0, True),
    ):
        check_setting(f"solve argument {name}", value, kind, low, optional)
    config = resolve_config(game, config)
    if is_concrete(game):  # the values may have changed since construction (`replace`)
        validate_game(game)
    dtype = float_dtype(game, config)
    game = cast_game(game, dtype)
    controlled = detect_controlled(game, config)
    init, _ = make_train_step(game, config, controlled=controlled)
    mesh = data_mesh(config)
    concrete = is_concrete((game, key))
    report = _Reporter(progress if progress is not None else
                       (print_progress if verbose else None), concrete)  # fmt: skip
    k_init, k_train, k_diag, k_ref, k_pool = jax.random.split(key, 5)
    state = init(k_init)
    status = initial_status(game.num_regimes, dtype)
    m = game.num_regimes
    history = {
        "step": np.zeros((0,), np.int64),
        "loss": np.zeros((0,), dtype),
        "residual": np.zeros((0, 2, m), dtype),
    }
    chunks = []
    settings = config._settings()
    key_data = np.asarray(jax.random.key_data(key)) if concrete else None
    if concrete and has_checkpoint(checkpoint_dir):
        state, history = restore_checkpoint(
            checkpoint_dir, state, key_data=key_data, settings=settings
        )
        report(f"resumed from {checkpoint_dir} at step {int(state.step)}", phase="resume",
               step=int(state.step))  # fmt: skip
    done = int(state.step) if concrete else 0
    num_steps = config.adam.steps
    if concrete and done < num_steps and int(state.refine_step) > 0:
        # Its parameters are Gauss-Newton iterates: more Adam steps from them would not be
        # the run that the larger budget describes, and the refinement would not run again.
        raise ValueError(
            f"The checkpoint in {checkpoint_dir} finished its {done} Adam steps and "
            f"{int(state.refine_step)} Gauss-Newton iterations; it cannot continue to "
            f"{num_steps} Adam steps. Fix: resume with AdamConfig(steps={done}) (a larger "
            "GaussNewtonConfig.steps continues the refinement) or use a new checkpoint_dir."
        )
    target = num_steps if stop_at_step is None else min(num_steps, stop_at_step)
    state, game = replicate((state, game), mesh)
    good = state
    if not (concrete and reference_every):
        reference = None
    elif reference is None and getattr(game, "quadratic_value", False):
        from .._riccati import riccati_reference

        reference = riccati_reference(game, concept=config.concept)
    errors = {"step": [], "seconds": [], "value": [], "mean": []}
    clock = 0.0  # training seconds (compilation included, reference checks excluded)

    def check(step):
        solution = _make_solution(state, game, history, chunks, {}, status, config, controlled)
        err = _reference_errors(solution, reference, k_ref)
        errors["step"].append(step)
        errors["seconds"].append(clock)
        errors["value"].append(err["value"])
        errors["mean"].append(err["mean"])

    t_start = time.perf_counter()
    chunk_index = 0
    adam_config = _adam_settings(config)
    while done < target:
        num = min(chunk_size, target - done)
        tic = time.perf_counter()
        if config.num_pool_points > 0:
            pool_t, pool_x = _refresh_pool(
                adam_config, controlled, state.params, state.norm, game,
                jax.random.fold_in(k_pool, done), num_points=config.sampler.pool_size,
            )  # fmt: skip
            state = state.replace(pool_t=pool_t, pool_x=pool_x)
        # Always the full chunk length (one compilation); steps past `done + num` are skipped.
        stop = jnp.asarray(done + num, jnp.int32)
        state, good, status, metrics = run_chunk(
            game, state, good, status, k_train, stop,
            config=adam_config, controlled=controlled, num=chunk_size,
        )  # fmt: skip
        metrics = jax.tree.map(lambda a, num=num: a[:num], metrics)
        chunks.append(metrics)
        done += num
        chunk_index += 1
        if not concrete:
            continue
        loss = np.asarray(metrics["loss"])
        elapsed = time.perf_counter() - tic
        clock += elapsed
        if bool(status.diverged):
            first_bad = int(status.step)
            keep = max(first_bad - (done - num), 0)
            chunks[-1] = jax.tree.map(lambda a, keep=keep: a[:keep], metrics)
            break
        if reference is not None and chunk_index % reference_every == 0:
            check(done)
        if report.active:
            terms = np.asarray(metrics["residual"][-1])
            worst = np.unravel_index(np.argmax(terms), terms.shape)
            line = (
                f"step {done}/{num_steps}  loss {loss[-1]:.3e}  "
                f"(worst: {PLAYERS[worst[0]]} regime {worst[1]} {terms[worst]:.2e})  "
                f"{num / elapsed:.0f} steps/s{' incl. compilation' if chunk_index == 1 else ''}"
            )
            if errors["step"] and errors["step"][-1] == done:
                line += (
                    f"  | max rel. error: value {np.max(errors['value'][-1]):.2e}, "
                    f"policy mean {np.max(errors['mean'][-1]):.2e}"
                )
            report(line, phase="adam", step=done, loss=float(loss[-1]), rate=num / elapsed)
        if checkpoint_dir is not None and (chunk_index % checkpoint_every == 0 or done >= target):
            hist = _concat_history(history, chunks)
            save_checkpoint(checkpoint_dir, state, hist, key_data=key_data, settings=settings)
    # Gauss-Newton refinement once all Adam steps are done (not after an interruption).
    empty = np.zeros((0,), dtype)
    refine_losses = [np.asarray(history.get("refine_loss", empty))]
    refine_scores = [np.asarray(history.get("refine_evaluation_loss", empty))]
    done_refine = int(state.refine_step) if concrete else 0
    refine_total = refine_iterations(game, config)
    stopped = concrete and bool(status.diverged)
    if not stopped and done >= num_steps and done_refine < refine_total:
        if stop_at_step is None or stop_at_step > num_steps:
            tic = time.perf_counter()
            # Iteration j uses fold_in(key, j), so splitting the iterations into pieces does not
            # change the result: one per reference check, a few for progress lines, else one.
            pieces = _refine_pieces(
                refine_total - done_refine, reference is not None, report.active
            )
            k_refine = jax.random.fold_in(k_train, num_steps + 1)
            refine_config = _refine_settings(config)
            for piece in pieces:
                tic_piece = time.perf_counter()
                start = state.refine_step
                state, (before, after, score) = refine(
                    game, state, k_refine, config=refine_config,
                    controlled=controlled, num=piece,
                )  # fmt: skip
                status = _gauss_newton_status(status, before, start)
                refine_losses.append(after)
                refine_scores.append(score)
                # Stop after the piece (inside one, every later step is rejected: no-ops).
                if concrete and bool(status.diverged):
                    break
                if reference is not None:
                    jax.block_until_ready(after)
                    clock += time.perf_counter() - tic_piece
                    check(done + int(state.refine_step))
                if report.active and (reference is None or len(pieces) < 9 or
                                      int(state.refine_step) % 5 == 0):  # fmt: skip
                    seconds = time.perf_counter() - tic_piece
                    first = " incl. compilation" if int(start) == done_refine else ""
                    line = (
                        f"Gauss-Newton {int(state.refine_step)}/{refine_total}"
                        f"  loss {float(after[-1]):.3e}  {piece / seconds:.2f} it/s{first}"
                    )
                    if errors["step"] and errors["step"][-1] == done + int(state.refine_step):
                        line += (
                            f"  | max rel. error: value {np.max(errors['value'][-1]):.2e}, "
                            f"policy mean {np.max(errors['mean'][-1]):.2e}"
                        )
                    report(line, phase="gauss_newton", step=int(state.refine_step),
                           loss=float(after[-1]), rate=piece / seconds)  # fmt: skip
            if concrete:
                after = np.concatenate([np.asarray(a) for a in refine_losses[1:]])
                report(
                    f"Gauss-Newton refinement: {after.size} iterations, loss {after[0]:.3e} -> "
                    f"{after[-1]:.3e}, kept iteration {int(state.best_step) + 1} "
                    f"({time.perf_counter() - tic:.1f} s incl. compilation)",
                    phase="gauss_newton_done",
                    step=int(state.refine_step),
                    loss=float(after[-1]),
                    kept=int(state.best_step),
                )
                # A stopped refinement is not saved (the status is not in the checkpoint):
                # resuming repeats it from the Adam phase's checkpoint and stops the same way.
                if checkpoint_dir is not None and not bool(status.diverged):
                    hist = _concat_history(history, chunks)
                    hist["refine_loss"] = np.concatenate(refine_losses)
                    hist["refine_evaluation_loss"] = np.concatenate(refine_scores)
                    save_checkpoint(
                        checkpoint_dir, state, hist, key_data=key_data, settings=settings
                    )
    if int(refine_total) > 0 and (not concrete or int(state.refine_step) >= refine_total):
        # The refinement is complete: return its best iterate (the fixed evaluation batch).
        keep = jnp.isfinite(state.best_loss)
        state = state.replace(
            params=jax.tree.map(lambda b, p: jnp.where(keep, b, p), state.best_params, state.params)
        )
    train_seconds = time.perf_counter() - t_start
    full_history = _concat_history(history, chunks)
    join = np.concatenate if concrete else jnp.concatenate
    full_history["refine_loss"] = join(refine_losses)
    full_history["refine_evaluation_loss"] = join(refine_scores)
    full_history["refine_best"] = np.asarray(state.best_step) if concrete else state.best_step
    if errors["step"]:
        full_history["error_step"] = np.asarray(errors["step"])
        full_history["error_seconds"] = np.asarray(errors["seconds"])
        full_history["value_error"] = np.stack(errors["value"])
        full_history["mean_error"] = np.stack(errors["mean"])
    else:
        full_history["error_step"] = np.zeros((0,), np.int64)
        full_history["error_seconds"] = np.zeros((0,))
        full_history["value_error"] = np.zeros((0, 2, m))
        full_history["mean_error"] = np.zeros((0, 2, m))
    diagnostics = {}
    if diagnostic_points > 0:
        network = NetworkValue(
            params=state.params, norm=state.norm, game=game, model=value_model(game, config),
            config=config, controlled=controlled,
        )  # fmt: skip
        diagnostics = dict(_diagnostics(network, k_diag, num_points=diagnostic_points))
    diagnostics["diverged"] = status.diverged
    diagnostics["train_seconds"] = train_seconds
    if concrete:
        message = divergence_message(status, config)
        if message:
            warnings.warn(message, TrainingDivergedWarning, stacklevel=2)
        _warn_parabolicity(game, controlled, diagnostics)
        _warn_accuracy(diagnostics)
    return _make_solution(state, game, full_history, [], diagnostics, status, config, controlled)


# The jitted phases take the configuration as a static argument. Each gets only the settings it
# uses (the others reset), so that configurations differing elsewhere share compiled programs.
def _adam_settings(config: SolverConfig) -> SolverConfig:
    """``config`` as the Adam chunks see it (Gauss-Newton settings reset)."""
    if config.adam.steps == 0:  # no chunk runs
        return config
    return config.replace(gauss_newton=GaussNewtonConfig(steps=0))


def _refine_settings(config: SolverConfig) -> SolverConfig:
    """``config`` as the Gauss-Newton refinement sees it (Adam settings reset)."""
    layout = config.layout
    batch = (layout.points_per_time or 1) * layout.num_devices  # the smallest valid batch
    return config.replace(adam=AdamConfig(steps=0, batch_size=batch))


def print_progress(line: str, info: dict) -> None:
    """The default progress meter: one ``[stackjax.solve]`` line per event."""
    del info
    print(f"[stackjax.solve] {line}", flush=True)


class _Reporter:
    """Sends progress lines to the meter (never under tracing)."""

    def __init__(self, meter, concrete: bool):
        self.meter = meter if concrete else None

    @property
    def active(self) -> bool:
        return self.meter is not None

    def __call__(self, line: str, **info) -> None:
        if self.meter is not None:
            self.meter(line, info)


def _refine_pieces(total: int, checks: bool, progress: bool) -> list[int]:
    """How `solve` splits ``total`` Gauss-Newton iterations into jitted calls: one per
    reference check, about four equal pieces (a divisor of ``total``: one compilation) for
    progress lines, else a single call."""
    if checks:
        return [1] * total
    if progress and total >= 8:
        size = max(c for c in range(1, total // 4 + 1) if total % c == 0)
        return [size] * (total // size)
    return [total]


def _gauss_newton_status(status, before, start):
    """Sets result code 4 when a Gauss-Newton iteration starts from a non-finite loss (its
    steps are all rejected, so the parameters stay those of the last finite state)."""
    bad = ~jnp.isfinite(before)
    now = jnp.any(bad) & (status.code == 0)
    first = start + jnp.argmax(bad).astype(start.dtype)
    return status.replace(
        code=jnp.where(now, 4, status.code).astype(status.code.dtype),
        step=jnp.where(now, first, status.step),
        loss=jnp.where(now, before[jnp.argmax(bad)], status.loss),
    )


def _warn_parabolicity(game, controlled, diagnostics) -> None:
    if game.zero_sum or not controlled or "parabolicity_negative_fraction" not in diagnostics:
        return
    fraction = np.asarray(diagnostics["parabolicity_negative_fraction"])
    if np.any(fraction > 0):
        worst = np.asarray(diagnostics["parabolicity_min"])
        warnings.warn(
            "The coupled HJB system is not parabolic at part of the sample points (docs/math.md "
            f"§5.4): negative margin at fractions {np.round(fraction, 3).tolist()} of the points "
            f"per regime (min {np.round(worst, 4).tolist()}). There a small residual does not "
            "imply a small error. Fix: sample where the margin is positive (smaller "
            "SamplerConfig.scale) or add uncontrolled noise to the game.",
            RuntimeWarning,
            stacklevel=3,
        )


def _warn_accuracy(diagnostics) -> None:
    if "error_indicator" not in diagnostics:
        return
    both = np.maximum(
        np.asarray(diagnostics["error_indicator"]), np.asarray(diagnostics["error_indicator_x0"])
    )
    if not np.all(both <= ACCURACY_THRESHOLD):  # NaN warns too
        k, i = np.unravel_index(np.argmax(np.nan_to_num(both, nan=np.inf)), both.shape)
        warnings.warn(
            f"stackjax.solve: the residual-implied relative value error is {both[k, i]:.2g} for "
            f"the {PLAYERS[k]} in regime {i} (above {ACCURACY_THRESHOLD:g}; "
            "solution.diagnostics['error_indicator'] and ['error_indicator_x0'], docs/math.md "
            "§9.4), so the solution may be inaccurate. Fix: more training (AdamConfig.steps, "
            "GaussNewtonConfig.steps), a wider network (NetworkConfig), or check it against a "
            "reference or `monte_carlo_cost`.",
            AccuracyWarning,
            stacklevel=3,
        )


def _concat_history(history: dict, chunks: list) -> dict:
    out = {k: v for k, v in history.items()}
    if chunks:
        loss = jnp.concatenate([c["loss"] for c in chunks], axis=-1)
        residual = jnp.concatenate([c["residual"] for c in chunks], axis=-3)
        if is_concrete((loss, residual)):
            loss, residual = np.asarray(loss), np.asarray(residual)
            start = len(history["loss"])
            out["loss"] = np.concatenate([history["loss"], loss])
            out["residual"] = np.concatenate([history["residual"], residual])
            out["step"] = np.arange(start + loss.shape[-1], dtype=np.int64)
        else:
            out["loss"], out["residual"] = loss, residual
            out["step"] = jnp.arange(loss.shape[-1])
    return out


def _make_solution(state, game, history, chunks, diagnostics, status, config, controlled):
    hist = _concat_history(history, chunks) if chunks else dict(history)
    return Solution(
        state=state,
        game=game,
        history=hist,
        diagnostics=diagnostics,
        status=status,
        config=config,
        controlled=controlled,
    )
