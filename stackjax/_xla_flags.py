"""Work-around for an XLA:CPU scheduler bug in jaxlib 0.10 (applied when stackjax is imported).

With jaxlib 0.10.x, XLA:CPU's concurrency-optimised scheduler (on by default) mis-executes the
solver's Gauss-Newton refinement of value networks with an MLP correction (`_train._refine`:
a ``fori_loop`` of conjugate-gradient steps, each a JVP and a transposed JVP through the
residuals of a 512-point batch). Measured on a 2-core x86_64 CPU, `examples.cole_hopf_game`
(d = 10), one refinement iteration with 2 CG steps from the same key: jaxlib 0.9.2 and
jaxlib 0.10.2 with the scheduler off both give the batch loss 3.127e-01, jaxlib 0.10.2 with
it on gives 9.24e-04 and then never lets the process exit; with 40 CG steps (the default) the
call deadlocks with every XLA thread idle. The default `solve` of a non-LQ game therefore
hung. Turning the scheduler off (``--xla_cpu_enable_concurrency_optimized_scheduler=false``)
gives the jaxlib 0.9.2 results and costs nothing measurable here.

XLA reads ``XLA_FLAGS`` when JAX creates its first backend, so the flag is added to the
environment at import time, before any computation. Rules:

* only for jaxlib >= 0.10 (older XLA builds abort on flags they do not know);
* a ``XLA_FLAGS`` that already mentions the flag is left alone (the user decides);
* ``STACKJAX_KEEP_XLA_FLAGS=1`` disables the work-around;
* if a JAX backend already exists (JAX was used before ``import stackjax``), the flag can no
  longer take effect: a `RuntimeWarning` says how to set it by hand.

The flag only concerns the CPU backend; GPU and TPU executables are unaffected.
"""

from __future__ import annotations

import os
import warnings
from importlib.metadata import PackageNotFoundError, version

FLAG = "--xla_cpu_enable_concurrency_optimized_scheduler"


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


def apply() -> bool:
    """Adds ``FLAG=false`` to ``XLA_FLAGS`` if needed; returns whether it is in effect."""
    flags = os.environ.get("XLA_FLAGS", "")
    if FLAG.lstrip("-") in flags:
        return FLAG + "=false" in flags
    if os.environ.get("STACKJAX_KEEP_XLA_FLAGS") or not _affected_jaxlib():
        return False
    if _backend_initialized():
        warnings.warn(
            "stackjax: JAX was used before `import stackjax`, so the work-around for an "
            "XLA:CPU scheduler bug of jaxlib 0.10 (wrong results and a deadlock in the "
            "Gauss-Newton refinement of `solve`) cannot be applied. Fix: import stackjax "
            f"before running any JAX computation, or start Python with XLA_FLAGS='{FLAG}=false'"
            " (see stackjax._xla_flags).",
            RuntimeWarning,
            stacklevel=3,
        )
        return False
    os.environ["XLA_FLAGS"] = f"{flags} {FLAG}=false".strip()
    return True
