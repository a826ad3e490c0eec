"""The validation helpers of the discrete-time modules: those of `stackjax._validation`."""

from .._validation import as_float_array as as_float_array
from .._validation import check_finite as check_finite
from .._validation import check_positive as check_positive
from .._validation import check_probability as check_probability
from .._validation import check_shape as check_shape
from .._validation import fail as fail
from .._validation import is_concrete as is_concrete

__all__ = [
    "as_float_array",
    "check_finite",
    "check_positive",
    "check_probability",
    "check_shape",
    "fail",
    "is_concrete",
]
