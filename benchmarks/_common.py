"""Shared benchmark helpers: timing, JSON lines output, device label.

Import from a benchmark script run as ``python benchmarks/<name>.py`` (the script's directory
is then on ``sys.path``): ``from _common import ...``.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import jax

DEFAULT_RESULTS_DIR = Path(__file__).resolve().parent / "results"


def block(tree: Any) -> Any:
    """`jax.block_until_ready` on every JAX array of a pytree (other leaves pass through)."""
    return jax.block_until_ready(tree)


def time_call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[float, Any]:
    """Wall-clock seconds of one call ``fn(*args, **kwargs)`` (results blocked), and its result."""
    start = time.perf_counter()
    out = block(fn(*args, **kwargs))
    return time.perf_counter() - start, out


def median(values: Iterable[float]) -> float:
    """Median of a non-empty sequence (``nan`` when empty)."""
    values = list(values)
    return statistics.median(values) if values else float("nan")


def device_label() -> dict[str, Any]:
    """Where the benchmark ran: JAX device, CPU count, library versions, host."""
    import numpy as np
    import scipy

    dev = jax.devices()[0]
    return {
        "platform": dev.platform,
        "device_kind": dev.device_kind,
        "num_devices": jax.device_count(),
        "cpu_count": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "x64": bool(jax.config.read("jax_enable_x64")),
        "blas_threads_env": {
            k: os.environ[k]
            for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
            if k in os.environ
        },
    }


def device_string(label: dict[str, Any]) -> str:
    """One-line summary of `device_label`."""
    return (
        f"{label['platform']} / {label['device_kind']} ({label['processor']}), "
        f"{label['cpu_count']} CPUs; jax {label['jax']}, numpy {label['numpy']}, "
        f"scipy {label['scipy']}, x64={label['x64']}"
    )


def timestamp() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def write_jsonl(path: Path | str, records: Iterable[dict[str, Any]], *, append: bool = False):
    """Writes one JSON object per line (overwrites unless ``append``); creates parent dirs."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a" if append else "w") as f:
        for record in records:
            f.write(json.dumps(record, default=_json_default) + "\n")
    return path


def _json_default(obj: Any):
    try:
        import numpy as np

        if isinstance(obj, np.generic):
            return obj.item()
        if isinstance(obj, np.ndarray):
            return obj.tolist()
    except ImportError:  # pragma: no cover
        pass
    return str(obj)


def format_table(headers: list[str], rows: list[list[Any]]) -> str:
    """Plain-text table with right-aligned columns; floats formatted by the caller."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[j]) for r in cells) for j in range(len(headers))]
    lines = [" ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    lines.insert(1, " ".join("-" * w for w in widths))
    return "\n".join(lines)
