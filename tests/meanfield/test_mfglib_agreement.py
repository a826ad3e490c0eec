"""Every ported environment against MFGLib itself: reward and kernel tensors at random mean
fields, flows and exploitability of random policies (MFGLib run in float64; tolerance 1e-10,
well inside the 1e-6 target)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import stackjax.meanfield as mf

torch = pytest.importorskip("torch")
mfglib_alg = pytest.importorskip("mfglib.alg")  # first: mfglib.scoring imports it circularly
mfglib_env = pytest.importorskip("mfglib.env")
mfglib_utils = pytest.importorskip("mfglib.utils")
mfglib_scoring = pytest.importorskip("mfglib.scoring")

Env = mfglib_env.Environment
TOL = 1e-10
_mean_field = jax.jit(mf.mean_field)
_exploitability = jax.jit(mf.exploitability)


@pytest.fixture(autouse=True)
def torch_float64():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def _crowd_pair():
    reference = Env.crowd_motion(T=3, torus_l=5, torus_w=4, loc_change_freq=1, seed=3)
    path = []
    for c1 in reference.reward_fn.c1s:  # the bar sits where the attraction is 1
        flat = int(torch.argmax(c1[:, :, 0]))
        path.append(divmod(flat, 4))
    return mf.crowd_motion(np.array(path), T=3, torus_l=5, torus_w=4), reference


def _random_linear_pair():
    reference = Env.random_linear(T=3, n=4, m=2.0, seed=1)
    tensors = {
        "p1": reference.transition_fn.p1.numpy(),
        "p2": reference.transition_fn.p2.numpy(),
        "r1": reference.reward_fn.r1.numpy(),
        "r2": reference.reward_fn.r2.numpy(),
    }
    return mf.random_linear(T=3, n=4, m=2.0, tensors=tensors), reference


PAIRS = {
    "left_right": lambda: (mf.left_right(), Env.left_right()),
    "left_right_mixed_start": lambda: (
        mf.left_right(mu0=(0.5, 0.2, 0.3)),
        Env.left_right(mu0=(0.5, 0.2, 0.3)),
    ),
    "rock_paper_scissors": lambda: (mf.rock_paper_scissors(T=2), Env.rock_paper_scissors(T=2)),
    "susceptible_infected": lambda: (
        mf.susceptible_infected(T=6),
        Env.susceptible_infected(T=6),
    ),
    "beach_bar": lambda: (mf.beach_bar(), Env.beach_bar()),
    "beach_bar_large": lambda: (
        mf.beach_bar(T=4, n=7, bar_loc=5, p_still=0.3),
        Env.beach_bar(T=4, n=7, bar_loc=5, p_still=0.3),
    ),
    "equilibrium_price": lambda: (mf.equilibrium_price(), Env.equilibrium_price()),
    "equilibrium_price_other": lambda: (
        mf.equilibrium_price(
            T=3, s_inv=4, Q=3, H=1, d=2.0, sigma=0.7, c=(0.5, 0.2, 0.3, 0.1, 0.05)
        ),
        Env.equilibrium_price(
            T=3, s_inv=4, Q=3, H=1, d=2.0, sigma=0.7, c=(0.5, 0.2, 0.3, 0.1, 0.05)
        ),
    ),
    "linear_quadratic": lambda: (mf.linear_quadratic(), Env.linear_quadratic()),
    "linear_quadratic_small_noise": lambda: (
        mf.linear_quadratic(T=4, el=4, m=1, sigma=0.7, delta=0.3, k=0.7),
        Env.linear_quadratic(T=4, el=4, m=1, sigma=0.7, delta=0.3, k=0.7),
    ),
    "crowd_motion": _crowd_pair,
    "building_evacuation": lambda: (
        mf.building_evacuation(T=2, n_floor=3, floor_l=3, floor_w=4),
        Env.building_evacuation(T=2, n_floor=3, floor_l=3, floor_w=4),
    ),
    "conservative_treasure_hunting": lambda: (
        mf.conservative_treasure_hunting(T=3, n=3, r=(1.0, 0.5, 2.0), c=(0.5, 1.0, 2.0)),
        Env.conservative_treasure_hunting(T=3, n=3, r=(1.0, 0.5, 2.0), c=(0.5, 1.0, 2.0)),
    ),
    "random_linear": _random_linear_pair,
}


VARIANTS = {
    "left_right_mixed_start",
    "beach_bar_large",
    "equilibrium_price_other",
    "linear_quadratic_small_noise",
}
NAMES = [
    pytest.param(name, marks=pytest.mark.slow) if name in VARIANTS else name
    for name in sorted(PAIRS)
]


def _random_joint(rng, game):
    return rng.dirichlet(np.full(game.num_states * game.num_actions, 0.7)).reshape(
        game.num_states, game.num_actions
    )


def _random_policy(rng, game):
    shape = (game.horizon, game.num_states)
    return rng.dirichlet(np.full(game.num_actions, 0.8), size=shape)


def _to_torch(game, reference, array):
    """[H?, S, A] flat layout -> MFGLib's [..., *S, *A]."""
    lead = array.shape[:-2]
    return torch.tensor(np.asarray(array).reshape(lead + reference.S + reference.A))


@pytest.mark.parametrize("name", NAMES)
def test_reward_and_kernel_tensors_match_mfglib(name):
    game, reference = PAIRS[name]()
    rng = np.random.default_rng(0)
    n_s, n_a = game.num_states, game.num_actions
    for t in range(game.horizon):
        joint = _random_joint(rng, game)
        ours_r, ours_p = (
            np.asarray(
                jax.jit(f)(game.params, jnp.asarray(t), jnp.asarray(joint), game.leader_init)
            )
            for f in (game.reward_fn, game.transition_fn)
        )
        ref_r = reference.reward(t, _to_torch(game, reference, joint)).numpy().reshape(n_s, n_a)
        np.testing.assert_allclose(ours_r, ref_r, rtol=TOL, atol=TOL, err_msg=f"reward t={t}")
        if t < game.horizon - 1:  # MFGLib never evaluates a kernel after the last step
            ref_p = reference.prob(t, _to_torch(game, reference, joint)).numpy()
            ref_p = ref_p.reshape(n_s, n_s, n_a).transpose(1, 2, 0)
            np.testing.assert_allclose(ours_p, ref_p, rtol=TOL, atol=TOL, err_msg=f"kernel t={t}")


@pytest.mark.parametrize("name", NAMES)
def test_flow_and_exploitability_match_mfglib(name):
    game, reference = PAIRS[name]()
    rng = np.random.default_rng(1)
    for _ in range(2):
        policy = _random_policy(rng, game)
        ours_flow = np.asarray(_mean_field(game, policy))
        torch_policy = _to_torch(game, reference, policy)
        ref_flow = mfglib_utils.mean_field_from_policy(torch_policy, env=reference).numpy()
        np.testing.assert_allclose(ours_flow, ref_flow.reshape(ours_flow.shape), atol=TOL)
        ours_expl = float(_exploitability(game, policy))
        ref_expl = mfglib_scoring.exploitability_score(reference, torch_policy)
        np.testing.assert_allclose(ours_expl, ref_expl, rtol=1e-9, atol=1e-9)
