"""Input validation shared by the discrete solvers.

Shape checks are always performed (shapes are static under ``jit``/``vmap``). Value checks
(finiteness, positivity, probabilities summing to one) are performed only when the value is
concrete, i.e. when the function is called eagerly; inside a traced computation they are
skipped because the values are not known at trace time.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "as_float_array",
    "check_finite",
    "check_positive",
    "check_probability",
    "check_shape",
    "is_concrete",
]


def is_concrete(x) -> bool:
    """Whether ``x`` holds concrete values (not a tracer)."""
    leaves = jax.tree_util.tree_leaves(x)
    return not any(isinstance(leaf, jax.core.Tracer) for leaf in leaves)


def as_float_array(x, name: str, dtype=None) -> jax.Array:
    """Converts ``x`` to a floating-point JAX array (default float dtype unless ``dtype``)."""
    try:
        arr = jnp.asarray(x)
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"`{name}` must be array-like of numbers; received {type(x).__name__}. "
            "Pass a numpy or JAX array."
        ) from err
    if dtype is None:
        dtype = arr.dtype if jnp.issubdtype(arr.dtype, jnp.floating) else jnp.result_type(float)
    return arr.astype(dtype)


def check_shape(x: jax.Array, name: str, ndim: int | None = None, shape=None) -> None:
    """Raises ``ValueError`` if ``x`` does not have ``ndim`` dimensions / the given shape.

    ``shape`` entries equal to ``None`` are free.
    """
    if ndim is not None and x.ndim != ndim:
        raise ValueError(
            f"`{name}` must have {ndim} dimension(s); received shape {tuple(x.shape)}. "
            f"Reshape `{name}` (batch games with jax.vmap instead of extra leading axes)."
        )
    if shape is not None:
        if len(shape) != x.ndim or any(
            s is not None and s != xs for s, xs in zip(shape, x.shape, strict=True)
        ):
            expected = tuple("*" if s is None else s for s in shape)
            raise ValueError(
                f"`{name}` must have shape {expected}; received {tuple(x.shape)}. "
                f"Make the shapes of `{name}` and the other inputs match."
            )


def check_finite(x, name: str) -> None:
    """Raises ``ValueError`` if a concrete ``x`` contains NaN or infinity."""
    if is_concrete(x) and not bool(np.all(np.isfinite(np.asarray(x)))):
        raise ValueError(
            f"`{name}` must contain only finite numbers; received NaN or infinite entries. "
            f"Replace the non-finite entries of `{name}`."
        )


def check_positive(x, name: str) -> None:
    """Raises ``ValueError`` if a concrete ``x`` is not finite and strictly positive."""
    if is_concrete(x):
        arr = np.asarray(x)
        if not (np.all(np.isfinite(arr)) and np.all(arr > 0)):
            shown = arr if arr.size < 8 else arr.ravel()[:8]
            raise ValueError(
                f"`{name}` must be finite and > 0; received {shown}. "
                f"Pass a strictly positive `{name}` (use strong_stackelberg for the limit 0)."
            )


def check_probability(x, name: str, axis: int = -1, atol: float | None = None) -> None:
    """Raises ``ValueError`` if a concrete ``x`` is not a probability vector along ``axis``."""
    if not is_concrete(x):
        return
    arr = np.asarray(x, dtype=np.float64)
    if atol is None:
        atol = 1e-5 if np.asarray(x).dtype == np.float32 else 1e-8
    if not np.all(np.isfinite(arr)) or np.any(arr < -atol):
        raise ValueError(
            f"`{name}` must contain finite non-negative probabilities; received negative or "
            f"non-finite entries. Fix `{name}`."
        )
    sums = arr.sum(axis=axis)
    if not np.allclose(sums, 1.0, atol=max(atol, 1e-6) * arr.shape[axis]):
        worst = sums.ravel()[np.argmax(np.abs(sums.ravel() - 1.0))]
        raise ValueError(
            f"`{name}` must sum to 1 along axis {axis}; received a sum of {worst:.6g}. "
            f"Normalize `{name}` along that axis."
        )
