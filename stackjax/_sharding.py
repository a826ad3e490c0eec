"""Device-mesh helpers (``jax.sharding``; no ``pmap``).

Collocation points are sharded along the mesh axis ``"data"``; parameters, optimizer state
and the game are replicated. The same program runs on one CPU, one GPU or many devices:
with one device the constraints are no-ops.
"""

from __future__ import annotations

import jax
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

__all__ = ["DATA_AXIS", "make_data_mesh", "shard_points", "replicate"]

DATA_AXIS = "data"


def make_data_mesh(num_devices: int) -> jax.sharding.Mesh:
    """A 1-D mesh with axis ``"data"`` over the first ``num_devices`` devices.

    Raises:
      ValueError: if fewer devices are available (names the fix).
    """
    available = jax.devices()
    if num_devices < 1 or num_devices > len(available):
        raise ValueError(
            f"num_devices={num_devices} but {len(available)} device(s) are available "
            f"({available[0].platform}). Fix: use 1 <= num_devices <= {len(available)} (on CPU, "
            "more host devices can be forced with jax.config.update('jax_num_cpu_devices', n) "
            "before JAX is initialised)."
        )
    return jax.make_mesh(
        (num_devices,),
        (DATA_AXIS,),
        axis_types=(jax.sharding.AxisType.Auto,),
        devices=available[:num_devices],
    )


def shard_points(tree, mesh: jax.sharding.Mesh | None):
    """Constrains every leaf's leading (point) axis to be split over ``"data"`` (inside jit)."""
    if mesh is None:
        return tree

    def constrain(leaf):
        spec = P(DATA_AXIS, *([None] * (leaf.ndim - 1)))
        return jax.lax.with_sharding_constraint(leaf, NamedSharding(mesh, spec))

    return jax.tree.map(constrain, tree)


def replicate(tree, mesh: jax.sharding.Mesh | None):
    """Places every leaf on all devices of ``mesh`` (replicated); identity without a mesh."""
    if mesh is None:
        return tree
    return jax.device_put(tree, NamedSharding(mesh, P()))
