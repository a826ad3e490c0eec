"""XLA:CPU settings for jaxlib 0.10: two bug work-arounds and a faster compiler path (applied
when stackjax is imported).

1. ``--xla_cpu_enable_concurrency_optimized_scheduler=false``: XLA:CPU's
   concurrency-optimised scheduler (on by default) mis-executes the Gauss-Newton refinement
   of value networks with an MLP correction (`_solver._gauss_newton.refine`, a ``fori_loop``
   of conjugate-gradient steps): wrong losses, then a deadlock.
2. ``--xla_cpu_experimental_ynn_fusion_type=`` (an empty list: no "YNN" YNNPACK/slinky
   fusions): a YNN transpose crashes the same refinement (segmentation fault) when states
   share the quadratic head's coefficients (`LayoutConfig.points_per_time`). Without YNN
   fusions the losses are correct at the same speed.

The reproductions and timings are in docs/performance.md (section "design").

XLA reads ``XLA_FLAGS`` when JAX creates its first backend, so the flags are added to the
environment at import time, before any computation. Rules:

* only for jaxlib >= 0.10 (older XLA builds abort on flags they do not know);
* a flag that ``XLA_FLAGS`` already mentions is left alone (the user decides);
* ``STACKJAX_KEEP_XLA_FLAGS=1`` disables the work-arounds;
* if a JAX backend already exists (JAX was used before ``import stackjax``), the flags can no
  longer take effect: a `RuntimeWarning` says how to set them by hand.

The flags only concern the CPU backend; GPU and TPU executables are unaffected.

`loop_jit` compiles the programs that iterate thousands of times (training chunks, refinements,
learners' training loops) optimised (LLVM level 1) even when ``XLA_FLAGS`` lowers
``xla_backend_optimization_level`` to cut compile time (the test suite does): their run time, not
their compile time, dominates. Without such a flag it is `jax.jit` unchanged. A test suite whose
loops are short may choose their level with ``STACKJAX_LOOP_OPTIMIZATION_LEVEL`` (0-3) or by
setting `LOOP_OPTIMIZATION_LEVEL` (read at call time).
"""

from __future__ import annotations

import functools
import os
import warnings
from importlib.metadata import PackageNotFoundError, version

import jax

FLAG = "--xla_cpu_enable_concurrency_optimized_scheduler"
YNN_FLAG = "--xla_cpu_experimental_ynn_fusion_type"
EMITTER_FLAG = "--xla_cpu_use_fusion_emitters"
#: flag -> value set by `apply`.
FLAGS = {FLAG: "false", YNN_FLAG: "", EMITTER_FLAG: "false"}


def _affected_jaxlib() -> bool:
    try:
        major, minor = (int(p) for p in version("jaxlib").split(".")[:2])
    except (PackageNotFoundError, ValueError):  # pragma: no cover - unusual installs
        return False
    return (major, minor) >= (0, 10)


def _backend_initialized() -> bool:
    try:
        from jax._src import xla_bridge

        return bool(getattr(xla_bridge, "_backends", {}))
    except Exception:  # pragma: no cover - private API moved
        return False


def _setting(flag: str) -> str:
    return f"{flag}={FLAGS[flag]}"


def apply() -> bool:
    """Adds the `FLAGS` to ``XLA_FLAGS`` if needed; returns whether all are in effect."""
    flags = os.environ.get("XLA_FLAGS", "")
    missing = [f for f in FLAGS if f.lstrip("-") not in flags]
    user_set = [f for f in FLAGS if f not in missing]
    in_effect = all(_setting(f) in flags.split() for f in user_set)
    if not missing:
        return in_effect
    if os.environ.get("STACKJAX_KEEP_XLA_FLAGS") or not _affected_jaxlib():
        return False
    settings = " ".join(_setting(f) for f in missing)
    if _backend_initialized():
        warnings.warn(
            "stackjax: JAX was used before `import stackjax`, so the work-arounds for XLA:CPU "
            "bugs of jaxlib 0.10 (wrong results, a deadlock and a crash in the Gauss-Newton "
            "refinement of `solve`) cannot be applied. Fix: import stackjax before running any "
            f"JAX computation, or start Python with XLA_FLAGS='{settings}' (see "
            "stackjax._xla_flags).",
            RuntimeWarning,
            stacklevel=3,
        )
        return False
    os.environ["XLA_FLAGS"] = f"{flags} {settings}".strip()
    return in_effect


#: Environment variable choosing `loop_jit`'s level (read at import).
LOOP_LEVEL_VARIABLE = "STACKJAX_LOOP_OPTIMIZATION_LEVEL"


def _loop_level_from_environment() -> int:
    text = os.environ.get(LOOP_LEVEL_VARIABLE, "1")
    if text not in ("0", "1", "2", "3"):
        raise ValueError(
            f"{LOOP_LEVEL_VARIABLE} must be 0, 1, 2 or 3, got {text!r}. Fix: unset it "
            "(level 1) or choose one of these."
        )
    return int(text)


#: Level 1: the loops run as fast as at XLA's default 3 and compile faster (docs/performance.md).
#: Read at call time; a test suite whose loops are short may lower it (tests/_loops.py).
LOOP_OPTIMIZATION_LEVEL = _loop_level_from_environment()


def loop_compiler_options() -> dict[str, int] | None:
    """Per-program options of `loop_jit`: None unless ``XLA_FLAGS`` sets an optimisation level."""
    if "xla_backend_optimization_level" in os.environ.get("XLA_FLAGS", ""):
        return {"xla_backend_optimization_level": LOOP_OPTIMIZATION_LEVEL}
    return None


def _top_level() -> bool:
    """Whether no JAX transformation is tracing (compiler options only apply to top-level jits)."""
    try:
        from jax._src.core import trace_state_clean

        return trace_state_clean()
    except ImportError:  # pragma: no cover - private API moved: never pass the options
        return False


class _LoopJit:
    """``jax.jit(fun)`` with the loop options at top level, plain ``jax.jit`` inside a trace."""

    def __init__(self, fun, jit_kwargs):
        self._plain = jax.jit(fun, **jit_kwargs)
        self._fun, self._jit_kwargs, self._tuned = fun, jit_kwargs, {}
        functools.update_wrapper(self, fun)

    def _program(self):
        options = loop_compiler_options() if _top_level() else None
        if options is None:
            return self._plain
        level = options["xla_backend_optimization_level"]
        if level not in self._tuned:  # one jitted function (and compilation cache) per level
            self._tuned[level] = jax.jit(self._fun, compiler_options=options, **self._jit_kwargs)
        return self._tuned[level]

    def __call__(self, *args, **kwargs):
        return self._program()(*args, **kwargs)

    def __getattr__(self, name):  # lower, trace, _cache_size, ...: the top-level program's
        if name in ("_plain", "_fun", "_jit_kwargs", "_tuned"):  # not yet set (copying)
            raise AttributeError(name)
        return getattr(self._program(), name)


def loop_jit(fun=None, **jit_kwargs):
    """`jax.jit` for long-running loops (decorator or call, as ``jax.jit``); see module doc."""
    if fun is None:
        return functools.partial(loop_jit, **jit_kwargs)
    if loop_compiler_options() is None:
        return jax.jit(fun, **jit_kwargs)
    return _LoopJit(fun, jit_kwargs)
