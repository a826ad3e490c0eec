"""Input validation shared by every constructor of stackjax (continuous and discrete time).

Messages follow one convention: which argument, what was expected, what was got, and the fix
(``ValueError`` / ``TypeError``, never ``assert``). Shape checks always run (shapes are static
under ``jit``/``vmap``); value checks (finiteness, signs, probabilities, generators) run only on
concrete values: inside a traced computation the values are not known, so traced inputs are
not validated.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "as_float_array",
    "as_key",
    "check_finite",
    "check_generator",
    "check_positive",
    "check_probability",
    "check_setting",
    "check_settings",
    "check_shape",
    "fail",
    "is_concrete",
    "scalar_setting",
]


def fail(where: str, symbol: str, problem: str, fix: str, error=ValueError):
    """Raises ``error("{where}: `{symbol}` {problem}. Fix: {fix}")``."""
    prefix = f"{where}: " if where else ""
    raise error(f"{prefix}`{symbol}` {problem}. Fix: {fix}")


def is_concrete(x) -> bool:
    """Whether ``x`` (any pytree) holds concrete values (no tracer)."""
    return not any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree_util.tree_leaves(x))


def as_float_array(x, name: str, dtype=None) -> jax.Array:
    """Converts ``x`` to a floating-point JAX array (default float dtype unless ``dtype``).

    Strings, booleans, complex numbers and objects are refused.
    """
    if isinstance(x, str | bytes) or x is None:
        raise TypeError(
            f"`{name}` must be array-like of real numbers; got {type(x).__name__} {x!r}. "
            "Pass a float, a numpy array or a JAX array."
        )
    try:
        arr = jnp.asarray(x)
    except (TypeError, ValueError) as err:
        raise TypeError(
            f"`{name}` must be array-like of real numbers; got {type(x).__name__}. "
            "Pass a numpy or JAX array."
        ) from err
    if arr.dtype == jnp.bool_ or jnp.issubdtype(arr.dtype, jnp.complexfloating):
        raise TypeError(
            f"`{name}` must hold real numbers; got dtype {arr.dtype}. Pass real floats."
        )
    if dtype is None:
        dtype = arr.dtype if jnp.issubdtype(arr.dtype, jnp.floating) else jnp.result_type(float)
    return arr.astype(dtype)


def check_shape(x: jax.Array, name: str, ndim: int | None = None, shape=None) -> None:
    """Raises ``ValueError`` if ``x`` does not have ``ndim`` dimensions / the given shape.

    ``shape`` entries equal to ``None`` are free.
    """
    if ndim is not None and x.ndim != ndim:
        raise ValueError(
            f"`{name}` must have {ndim} dimension(s); got shape {tuple(x.shape)}. "
            f"Reshape `{name}` (batch with jax.vmap instead of extra leading axes)."
        )
    if shape is not None:
        if len(shape) != x.ndim or any(
            s is not None and s != xs for s, xs in zip(shape, x.shape, strict=True)
        ):
            expected = tuple("*" if s is None else s for s in shape)
            raise ValueError(
                f"`{name}` must have shape {expected}; got {tuple(x.shape)}. "
                f"Make the shapes of `{name}` and the other inputs match."
            )


def check_finite(x, name: str) -> None:
    """Raises ``ValueError`` if a concrete ``x`` contains NaN or infinity."""
    if is_concrete(x) and not bool(np.all(np.isfinite(np.asarray(x)))):
        raise ValueError(
            f"`{name}` must contain only finite numbers; got NaN or infinite entries. "
            f"Replace the non-finite entries of `{name}`."
        )


def check_positive(x, name: str, *, allow_zero: bool = False, fix: str | None = None) -> None:
    """Raises ``ValueError`` if a concrete ``x`` is not finite and > 0 (>= 0 with
    ``allow_zero``)."""
    if is_concrete(x):
        arr = np.asarray(x)
        ok = np.all(np.isfinite(arr)) and (np.all(arr >= 0) if allow_zero else np.all(arr > 0))
        if not ok:
            shown = arr if arr.size < 8 else arr.ravel()[:8]
            bound = ">= 0" if allow_zero else "> 0"
            raise ValueError(
                f"`{name}` must be finite and {bound}; got {shown}. "
                + (fix or f"Pass a finite `{name}` {bound}.")
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
            f"`{name}` must contain finite non-negative probabilities; got negative or "
            f"non-finite entries. Fix `{name}`."
        )
    sums = arr.sum(axis=axis)
    if not np.allclose(sums, 1.0, atol=max(atol, 1e-6) * arr.shape[axis]):
        worst = sums.ravel()[np.argmax(np.abs(sums.ravel() - 1.0))]
        raise ValueError(
            f"`{name}` must sum to 1 along axis {axis}; got a sum of {worst:.6g}. "
            f"Normalize `{name}` along that axis."
        )


def check_generator(generator, name: str = "generator", where: str = "") -> None:
    """Validates a Markov-chain generator ``[m, m]``: square, finite, off-diagonal rates
    ``>= 0``, rows summing to 0 (to the storage dtype's rounding). Values only if concrete."""
    arr = jnp.asarray(generator)
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1] or arr.shape[0] < 1:
        fail(where, name, f"must be a square [m, m] generator, got shape {tuple(arr.shape)}",
             "pass an m x m matrix (m = number of regimes; [[0.0]] for one regime)")  # fmt: skip
    if not is_concrete(generator):
        return
    gamma = np.asarray(arr, np.float64)
    if not np.all(np.isfinite(gamma)):
        fail(where, name, "has non-finite entries (NaN or inf)", "replace them by finite rates")
    off = gamma - np.diag(np.diag(gamma))
    if np.any(off < 0):
        i, j = np.argwhere(off < 0)[0]
        fail(where, name, f"has a negative off-diagonal rate {name}[{i}, {j}] = {gamma[i, j]}",
             "off-diagonal entries are jump rates and must be >= 0")  # fmt: skip
    rows = gamma.sum(axis=1)
    scale = max(1.0, float(np.abs(gamma).max()))
    dtype = arr.dtype if jnp.issubdtype(arr.dtype, jnp.floating) else np.float64
    tol = max(1e-8, 64 * float(np.finfo(dtype).eps))
    if np.any(np.abs(rows) > tol * scale):
        fail(where, name, f"rows must sum to 0, got row sums {rows}",
             "set each diagonal entry to minus its row's off-diagonal sum")  # fmt: skip


def as_key(key, name: str = "key") -> jax.Array:
    """A typed PRNG key: typed keys pass; legacy ``uint32 [2]`` keys (``jax.random.PRNGKey``)
    are wrapped; anything else raises ``TypeError`` showing the fix."""
    dtype = getattr(key, "dtype", None)
    if dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
        return key
    if dtype == jnp.uint32 and getattr(key, "shape", None) == (2,):
        return jax.random.wrap_key_data(key)
    raise TypeError(
        f"`{name}` must be a JAX PRNG key, got {type(key).__name__}"
        f"{'' if dtype is None else f' of dtype {dtype}'} {key!r:.40}. Fix: pass "
        "jax.random.key(seed) (split it with jax.random.split for several calls)."
    )


def check_setting(name: str, value, kind: str, low=None, optional: bool = False) -> None:
    """Type and range of one setting called ``name`` in the messages: ``kind`` ``"bool"``,
    ``"int"`` (``>= low``), ``"positive"``, ``"nonnegative"``, ``"fraction"`` (in ``[0, 1]``),
    ``"rate"`` (in ``(0, 1]``);
    ``optional``: ``None`` allowed. Bools are not numbers; real numbers must be finite."""
    if value is None:
        if optional:
            return
        raise TypeError(f"{name} must not be None. Fix: pass a value or omit it.")
    got = f"got {value!r} ({type(value).__name__})"
    if kind == "bool":
        if not isinstance(value, bool | np.bool_):
            raise TypeError(f"{name} must be a bool, {got}. Fix: pass True or False.")
        return
    if isinstance(value, bool | np.bool_):
        raise TypeError(f"{name} must be a number, {got}. Fix: pass a float or an int.")
    if kind == "int":
        if not isinstance(value, int | np.integer):
            raise TypeError(f"{name} must be an int >= {low}, {got}. Fix: pass a whole number.")
        if value < low:
            raise ValueError(f"{name} must be >= {low}, {got}. Fix: pass an int >= {low}.")
        return
    if not isinstance(value, int | float | np.integer | np.floating):
        raise TypeError(f"{name} must be a real number, {got}. Fix: pass a float.")
    value = float(value)
    ok, bound = {
        "positive": (math.isfinite(value) and value > 0, "finite and > 0"),
        "nonnegative": (math.isfinite(value) and value >= 0, "finite and >= 0"),
        "fraction": (0 <= value <= 1, "in [0, 1]"),
        "rate": (0 < value <= 1, "in (0, 1]"),
    }[kind]
    if not ok:
        raise ValueError(f"{name} must be {bound}, {got}. Fix: pass a value {bound}.")


def scalar_setting(value):
    """``value`` as `check_setting` should see it: a concrete 0-d NumPy or JAX array becomes the
    Python scalar it holds (``jnp.int32(4)`` is the int 4, a 0-d bool array stays a bool and is
    refused as a number); anything else (numbers, strings, tracers, larger arrays) is returned
    unchanged."""
    if isinstance(value, np.ndarray | jax.Array) and value.ndim == 0 and is_concrete(value):
        return value.item()
    return value


def check_settings(obj, checks: dict) -> None:
    """`check_setting` for each field of a settings object: ``checks`` maps a field name to
    ``(kind, minimum)`` or ``(kind, minimum, None allowed)``; messages name ``Class.field``."""
    owner = type(obj).__name__
    for name, spec in checks.items():
        check_setting(f"{owner}.{name}", getattr(obj, name), *spec)
