"""The level at which `stackjax._xla_flags.loop_jit` compiles loops in the tests.

The suite compiles at LLVM level 0 (conftest.py). Most tests run a solver's or learner's loop
for a few steps, so the loops are compiled at level 0 as well (faster to compile); tests that
run long trainings are marked ``long_loops`` and compile them at the library's level 1 (faster
to run). Module-scoped fixtures that train use the `long_loops` context manager.
"""

import contextlib

from stackjax import _xla_flags

#: Level of the loops in tests not marked ``long_loops``.
SHORT_LOOP_LEVEL = 0
#: The library's level (``long_loops``), before this module lowers it for the other tests.
LIBRARY_LEVEL = _xla_flags.LOOP_OPTIMIZATION_LEVEL
_xla_flags.LOOP_OPTIMIZATION_LEVEL = SHORT_LOOP_LEVEL


@contextlib.contextmanager
def long_loops():
    """Loops compiled at the library's default level inside the block."""
    saved = _xla_flags.LOOP_OPTIMIZATION_LEVEL
    _xla_flags.LOOP_OPTIMIZATION_LEVEL = LIBRARY_LEVEL
    try:
        yield
    finally:
        _xla_flags.LOOP_OPTIMIZATION_LEVEL = saved
