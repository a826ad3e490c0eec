"""The validation helpers of the discrete-time modules: those of `stackjax._validation` plus
policy, index and count checks."""

import jax.numpy as jnp
import numpy as np

from .._validation import as_float_array as as_float_array
from .._validation import as_key as as_key
from .._validation import check_finite as check_finite
from .._validation import check_positive as check_positive
from .._validation import check_probability as check_probability
from .._validation import check_shape as check_shape
from .._validation import fail as fail
from .._validation import is_concrete as is_concrete

__all__ = [
    "as_float_array",
    "as_key",
    "check_count",
    "check_index",
    "check_policy",
    "check_finite",
    "check_positive",
    "check_probability",
    "check_shape",
    "fail",
    "is_concrete",
]


def check_policy(policy, name: str, shape) -> None:
    """Shape ``shape`` (``None`` entries free) and, when concrete, rows on the simplex."""
    check_shape(policy, name, shape=shape)
    check_probability(policy, name, axis=-1)


def check_index(x, name: str, upper: int) -> None:
    """Concrete integer entries in ``[0, upper)``."""
    arr = jnp.asarray(x)
    if not jnp.issubdtype(arr.dtype, jnp.integer):
        raise TypeError(f"`{name}` must hold integers, got dtype {arr.dtype}. Fix: cast to int.")
    if is_concrete(x):
        values = np.asarray(arr)
        if values.size and (values.min() < 0 or values.max() >= upper):
            raise ValueError(
                f"`{name}` must be in [0, {upper - 1}], got values in "
                f"[{values.min()}, {values.max()}]. Fix: index within the game's sizes."
            )


def check_count(x, name: str, low: int = 1) -> int:
    """A Python integer ``>= low`` (bools and floats refused)."""
    if isinstance(x, bool | np.bool_) or not isinstance(x, int | np.integer):
        raise TypeError(
            f"`{name}` must be an int >= {low}, got {type(x).__name__} {x!r}. "
            "Fix: pass a whole number."
        )
    if x < low:
        raise ValueError(f"`{name}` must be >= {low}, got {x}. Fix: pass an int >= {low}.")
    return int(x)
