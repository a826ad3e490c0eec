"""`NetworkValue`: its fast residuals and state-gradient rows against the autodiff references
(`jax.hessian`, finite differences, per-point evaluation, the expanded head), in float64."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from stackjax import (
    NetworkConfig,
    NetworkValue,
    SolverConfig,
    examples,
    hjbi_residual,
    make_train_step,
    network_value,
)
from stackjax._sampling import sample_points
from stackjax._solver._step import sample_batch


def changed(config: SolverConfig, **groups) -> SolverConfig:
    """``config`` with field changes per group, e.g. ``layout={"dtype": "float64"}``."""
    return config.replace(**{g: getattr(config, g).replace(**f) for g, f in groups.items()})


@pytest.mark.slow
@pytest.mark.parametrize(
    "make_game, changes",
    [
        (lambda: examples.random_game(jax.random.key(6), 3, 2), {}),
        # MLP correction through the jax.hessian reference, states grouped by time:
        (lambda: examples.random_game(jax.random.key(7), 4, 3), dict(
            network={"correction": True}, operator={"method": "hessian"},
            layout={"points_per_time": 2})),
        # zero-sum (one network per regime, V_2 = -V_1), factored head, sketched diffusion:
        (examples.zero_sum_game, dict(
            network={"head_form": "factored"}, operator={"method": "hutchinson"})),
    ],
)  # fmt: skip
def test_residual_state_gradients_match_finite_differences(make_game, changes, tiny, random_params):
    """The gradient-enhanced loss's rows s grad_x R equal central differences of R (float64);
    they are assembled per regime (own V_t + H differentiated, coupling from the values'
    gradients), so this checks that assembly against the whole residual."""
    game = make_game()
    config = changed(tiny, layout={"dtype": "float64"}, operator={"gradient_weight": 1.0})
    config = changed(config, **changes)
    init, _ = make_train_step(game, config)
    state = init(jax.random.key(0))
    params = random_params(state.params)
    d = game.state_dim
    t, x = sample_points(game, jax.random.key(2), 4, scale=1.0, distribution="gaussian")
    pkeys = jax.random.split(jax.random.key(5), 4)
    if config.layout.points_per_time == 2:  # two times, two states each
        t, x, pkeys = t[:2], x.reshape(2, 2, d), pkeys.reshape(2, 2)
    net = network_value(game, config, params, state.norm)
    batch = jax.jit(NetworkValue.batch_residuals)  # compiled once for the 7 evaluations below

    def residuals(x):
        return batch(net, t, x, pkeys)

    r, jac = jax.jit(NetworkValue.batch_residual_gradients)(net, t, x, pkeys)
    np.testing.assert_allclose(r, residuals(x), rtol=1e-12)
    h = 1e-5
    for a in range(d):
        e = jnp.zeros(x.shape).at[..., a].set(h)
        up, down = residuals(x + e), residuals(x - e)
        fd = (up - down) / (2 * h) * float(state.norm.state_scale)
        np.testing.assert_allclose(jac[..., a], fd, rtol=1e-6, atol=1e-7)
    assert float(jnp.max(jnp.abs(jac))) > 1e-2
    # The loss is mean(R^2) + w mean(|s grad R|^2) over the same points.
    _, vec = jax.jit(NetworkValue.residual_vector)(net, t, x, pkeys)
    expected = jnp.mean(r**2) + jnp.sum(jac**2) / r.size
    np.testing.assert_allclose(jnp.sum(vec**2) / r.size, expected, rtol=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize(
    "make_game, correction",
    [
        (lambda: examples.random_game(jax.random.key(3), 5, 2), False),
        (lambda: examples.random_game(jax.random.key(4), 4, 2, controlled_diffusion=True), True),
        (lambda: examples.cole_hopf_game(d=3), True),
    ],
)
def test_time_grouped_points_equal_per_point_residuals(make_game, correction, tiny, random_params):
    """The default operator applies the quadratic head's (and G's) exact Hessian as a matrix
    product, shared by the states of one time (``points_per_time``), and HVPs only the rest:
    its residuals equal the ``jax.hessian`` reference at the same flat points, and its residuals
    and state-gradient rows equal the per-point (structured) evaluation, to 1e-10 in float64.
    Cole-Hopf has no ``terminal_hessian`` (autodiff of the terminal cost)."""
    game = make_game()
    config = changed(
        tiny, network={"correction": correction}, layout={"dtype": "float64", "points_per_time": 4}
    )
    init, _ = make_train_step(game, config)
    state = init(jax.random.key(0))
    params = random_params(state.params)
    t, x, pkeys = sample_batch(game, config, jax.random.key(2), jax.random.key(5), 16)
    assert t.shape == (4,) and x.shape == (4, 4, game.state_dim)
    flat_t = jnp.repeat(t, 4)
    flat_x, flat_keys = x.reshape(16, -1), pkeys.reshape(16)
    net = network_value(game, config, params, state.norm)
    grouped = jax.jit(NetworkValue.batch_residuals)(net, t, x, pkeys)
    reference = network_value(
        game,
        changed(config, operator={"method": "hessian"}, layout={"points_per_time": 1}),
        params,
        state.norm,
    )
    flat = jax.jit(NetworkValue.batch_residuals)(reference, flat_t, flat_x, flat_keys)
    assert float(jnp.max(jnp.abs(flat))) > 1e-2
    np.testing.assert_allclose(grouped, flat, rtol=1e-10, atol=1e-10)
    per_point = network_value(
        game, changed(config, layout={"points_per_time": 1}), params, state.norm
    )
    r, jac = jax.jit(NetworkValue.batch_residual_gradients)(net, t, x, pkeys)
    r_ref, jac_ref = jax.jit(NetworkValue.batch_residual_gradients)(
        per_point, flat_t, flat_x, flat_keys
    )
    np.testing.assert_allclose(r, r_ref, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(jac, jac_ref, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize(
    "make_game, correction, per",
    [
        (
            lambda: examples.random_game(jax.random.key(4), 3, 2, controlled_diffusion=True),
            False,
            4,
        ),
        (lambda: examples.zero_sum_game(), False, 1),
    ],
)
@pytest.mark.slow
def test_factored_head_equals_expanded(make_game, correction, per, tiny, random_params):
    """The factored head form (``sum_k T_k (B_k v)``, no per-time Hessian) gives the expanded
    form's residuals and state-gradient rows (grouped, 4 states per time, and flat points) and
    its Gauss-Newton products (grouped) to 1e-10 (float64)."""
    game = make_game()
    config = changed(
        tiny,
        network={"correction": correction},
        layout={"dtype": "float64", "points_per_time": per},
        operator={"gradient_weight": 1.0},
    )
    expanded = changed(config, network={"head_form": "expanded"})
    init, _ = make_train_step(game, expanded)
    state = init(jax.random.key(0))
    params = random_params(state.params)
    t, x, pkeys = sample_batch(game, expanded, jax.random.key(2), jax.random.key(5), 16)
    if per == 1:
        t, x, pkeys = t[:, 0] if t.ndim > 1 else t, x.reshape(16, -1), pkeys.reshape(16)

    nets = {
        form: network_value(game, changed(config, network={"head_form": form}), params, state.norm)
        for form in ("expanded", "factored")
    }

    def gauss_newton_product(net, p, v):
        f = lambda q: net.replace(params=q).residual_vector(t, x, pkeys)[1]  # noqa: E731
        _, lin = jax.linearize(f, p)
        return jax.linear_transpose(lin, p)(lin(v))[0]

    gradients = jax.jit(NetworkValue.batch_residual_gradients)
    r_e, jac_e = gradients(nets["expanded"], t, x, pkeys)
    r_f, jac_f = gradients(nets["factored"], t, x, pkeys)
    assert float(jnp.max(jnp.abs(r_e))) > 1e-2 and float(jnp.max(jnp.abs(jac_e))) > 1e-2
    np.testing.assert_allclose(r_f, r_e, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(jac_f, jac_e, rtol=1e-10, atol=1e-10)
    # J^T J v covers both the linearisation (forward mode, Gauss-Newton) and its transpose
    # (reverse mode: Adam's jax.grad is the same transpose of the same linearisation).
    if per == 1:  # the flat zero-sum case checks the residual rows only (keeps CI short)
        return
    v = random_params(params, scale=1.0)
    mv_e, mv_f = (jax.jit(lambda p, u, n=n: gauss_newton_product(n, p, u))(params, v)
                  for n in (nets["expanded"], nets["factored"]))  # fmt: skip
    for a, b in zip(jax.tree.leaves(mv_f), jax.tree.leaves(mv_e), strict=True):
        scale = max(float(jnp.max(jnp.abs(b))), 1e-30)
        np.testing.assert_allclose(a / scale, b / scale, rtol=0, atol=1e-10)


@pytest.mark.slow
@pytest.mark.parametrize("zero_sum", [False, True])
def test_hook_residual_equals_autodiff_residual(zero_sum, random_params):
    """`hjbi_residual` of a `NetworkValue` (its derivative hook: structured Hessian products)
    equals `hjbi_residual` of the same values as a plain function (`jax.hessian`) to 1e-10."""
    game = examples.zero_sum_game() if zero_sum else examples.controlled_diffusion_game()
    config = SolverConfig(network=NetworkConfig(correction=True))
    init, _ = make_train_step(game, config)
    state = init(jax.random.key(0))
    net = network_value(game, config, random_params(state.params, scale=0.3), state.norm)
    fast = jax.jit(lambda t, x: hjbi_residual(net, game, t, x))
    reference = jax.jit(lambda t, x: hjbi_residual(lambda s, z: net(s, z), game, t, x))
    for t, x in [(0.3, game.x0 + 0.5), (0.9, game.x0 - 1.0)]:
        r = fast(jnp.asarray(t), x)
        ref = reference(jnp.asarray(t), x)
        assert float(jnp.max(jnp.abs(ref))) > 1e-2
        np.testing.assert_allclose(r, ref, rtol=1e-10, atol=1e-10)
        if zero_sum:
            np.testing.assert_allclose(r[1], -r[0], rtol=1e-12)
