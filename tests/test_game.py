"""Game construction, conversion, files and validation (malformed games are refused by name)."""

import jax
import numpy as np
import pytest

import stackjax as sj
from stackjax.examples import scalar_game


def _symbols():
    return {k: np.asarray(v) for k, v in scalar_game().to_dict().items() if k != "zero_sum"}


def test_to_dict_round_trip_and_save_load(tmp_path):
    game = sj.examples.cross_term_game()
    again = sj.make_lq_game(**game.to_dict())
    for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(game), jax.tree.leaves(again)):
        np.testing.assert_array_equal(a, b, err_msg=jax.tree_util.keystr(path))
    file = tmp_path / "game.npz"
    game.save(file)
    loaded = sj.load_game(file)
    chex_equal = jax.tree.map(lambda a, b: bool(np.array_equal(a, b)), game, loaded)
    assert all(jax.tree.leaves(chex_equal))
    assert loaded.zero_sum == game.zero_sum


def test_optional_symbols_default_to_zero_and_dimensions_inferred():
    game = sj.make_lq_game(
        T=2.0, Gamma=[[0.0]], A=[[[-1.0]]], B1=[[[1.0, 0.0]]], B2=[[[1.0]]],
        R11=[[np.eye(2)], [np.eye(2)]], R22=[[[[1.0]]], [[[1.0]]]], lam=(0.1, 0.2),
    )  # fmt: skip
    assert (game.num_regimes, game.state_dim, game.leader_dim, game.follower_dim) == (1, 1, 2, 1)
    assert game.noise_dim == 1
    assert game.C.shape == (1, 1, 1, 1) and float(np.abs(game.C).max()) == 0.0
    assert game.S1.shape == (2, 1, 2, 1)


def test_zero_sum_fills_follower_costs_with_minus_leader():
    game = sj.examples.zero_sum_game()
    for name in ("Q", "R11", "R22", "G", "q"):
        arr = np.asarray(getattr(game, name))
        np.testing.assert_array_equal(arr[1], -arr[0])


def _broken(**changes):
    symbols = _symbols()
    symbols.update(changes)
    return symbols


_BAD_GAMES = {
    "A shape": (dict(A=np.zeros((2, 1, 2))), "`A`"),
    "B1 regime axis": (dict(B1=np.ones((3, 1, 1))), "`B1`"),
    "Q missing player axis": (dict(Q=np.ones((2, 1, 1))), "`Q`"),
    "s wrong noise count": (dict(s=np.ones((2, 2, 1)), C=np.zeros((2, 1, 1, 1))), "`s`"),
    "non-finite A": (dict(A=np.full((2, 1, 1), np.nan)), "`A`"),
    "infinite G": (dict(G=np.full((2, 2, 1, 1), np.inf)), "`G`"),
    "rows do not sum to 0": (dict(Gamma=np.array([[-1.0, 0.5], [1.0, -1.0]])), "rows must sum"),
    "negative rate": (dict(Gamma=np.array([[0.5, -0.5], [1.0, -1.0]])), "negative off-diagonal"),
    "Gamma not square": (dict(Gamma=np.zeros((2, 3))), "`Gamma`"),
    "negative temperature": (dict(lam=np.array([0.1, -0.1])), "`lam`"),
    "lam shape": (dict(lam=np.array([0.1, 0.1, 0.1])), "`lam`"),
    "T zero": (dict(T=np.array(0.0)), "`T`"),
    "T negative": (dict(T=np.array(-1.0)), "`T`"),
    "follower R22 not PD": (dict(R22=np.stack([np.ones((2, 1, 1)), -np.ones((2, 1, 1))])), "WP-F"),
    "reduced leader curvature": (
        dict(R11=np.stack([-np.ones((2, 1, 1)), np.ones((2, 1, 1))])),
        "WP-L1",
    ),
    "x0 shape": (dict(x0=np.zeros(3)), "`x0`"),
}


@pytest.mark.parametrize("name", sorted(_BAD_GAMES))
def test_malformed_game_raises_naming_the_symbol(name):
    changes, pattern = _BAD_GAMES[name]
    with pytest.raises(ValueError, match=pattern):
        sj.make_lq_game(**_broken(**changes))


def test_asymmetric_costs_are_rejected():
    game = sj.examples.cross_term_game()
    for name in ("Q", "G"):
        arr = np.array(getattr(game, name))
        arr[0, 0, 0, 1] += 0.5
        with pytest.raises(ValueError, match=f"`{name}` must be symmetric"):
            sj.make_lq_game(**{**game.to_dict(), name: arr})


def test_leader_covariance_condition_when_leader_explores():
    """(WP-L2): Rt11_1 must be PD when lambda_1 > 0 even if the reduced curvature is PD."""
    symbols = _symbols()
    # Leader gains curvature only through the reaction: R11 < 0 but Rbar > 0.
    symbols["R11"] = np.stack([-0.05 * np.ones((2, 1, 1)), np.ones((2, 1, 1))])
    symbols["R12"] = np.stack([np.zeros((2, 1, 1)), np.full((2, 1, 1), 0.9)])
    symbols["R22"] = np.stack([np.ones((2, 1, 1)), np.ones((2, 1, 1))])
    with pytest.raises(ValueError, match="WP-L2"):
        sj.make_lq_game(**symbols)
    symbols["lam"] = np.array([0.0, 0.5])  # classical leader: no covariance problem
    sj.make_lq_game(**symbols)


def test_zero_sum_requires_concave_maximizer_and_consistent_follower_costs():
    game = sj.examples.zero_sum_game()
    symbols = game.to_dict()
    bad = np.array(symbols["R22"])
    bad[0] = -bad[0]
    bad[1] = -bad[0]
    with pytest.raises(ValueError, match="ZS-F"):
        sj.make_lq_game(**{**symbols, "R22": bad})
    q = np.array(symbols["q"])
    q[1] = 1.0  # neither zero nor minus the leader's
    with pytest.raises(ValueError, match="zero-sum"):
        sj.make_lq_game(**{**symbols, "q": q})


def test_missing_required_symbol():
    symbols = _symbols()
    del symbols["B2"]
    with pytest.raises(ValueError, match="`B2` is required"):
        sj.make_lq_game(**symbols)


def test_controlled_diffusion_checked_at_terminal_curvature():
    """With D != 0, (WP-F) uses Rt22 = R22 + sum_l D^T G D at t = T."""
    symbols = _symbols()
    symbols["R22"] = np.stack([np.ones((2, 1, 1)), -0.1 * np.ones((2, 1, 1))])
    with pytest.raises(ValueError, match="WP-F"):
        sj.make_lq_game(**symbols)
    symbols["D2"] = np.ones((2, 1, 1, 1))  # adds 2 * G_follower = 1.0 > 0.1 of curvature
    game = sj.make_lq_game(**symbols)
    assert game.has_controlled_diffusion


def test_save_and_load_for_every_path_form(tmp_path):
    game = sj.examples.zero_sum_game()
    for given, expected in [("a", "a.npz"), ("b.npz", "b.npz")]:
        written = game.save(tmp_path / given)
        assert written == str(tmp_path / expected)
        for path in (tmp_path / given, str(tmp_path / expected), tmp_path / expected):
            loaded = sj.load_game(path)
            assert loaded.zero_sum is True
            np.testing.assert_array_equal(loaded.R11, game.R11)


@pytest.mark.parametrize("case", ["truncated", "npy", "text", "string_flag", "unknown", "missing"])
def test_load_game_refuses_bad_files_naming_them(tmp_path, case):
    good = tmp_path / "good.npz"
    sj.examples.scalar_game().save(good)
    bad = tmp_path / f"{case}.npz"
    if case == "truncated":
        bad.write_bytes(good.read_bytes()[:200])
    elif case == "npy":
        np.save(tmp_path / "x.npy", np.ones(3))
        bad = tmp_path / "x.npy"
    elif case == "text":
        bad.write_text("T = 1.0")
    elif case in ("string_flag", "unknown"):
        symbols = dict(np.load(good))
        symbols["zero_sum" if case == "string_flag" else "extra"] = np.asarray("False")
        np.savez(bad, **symbols)
    error = FileNotFoundError if case == "missing" else ValueError
    with pytest.raises(error, match=bad.name if case != "missing" else "missing"):
        sj.load_game(bad)


def test_save_and_load_expand_the_home_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    game = sj.examples.scalar_game()
    written = game.save("~/home_game")
    assert written == str(tmp_path / "home_game.npz")
    for path in ("~/home_game", "~/home_game.npz"):
        loaded = sj.load_game(path)
        np.testing.assert_array_equal(loaded.A, game.A)


def _resaved(tmp_path, name, **changes):
    good = tmp_path / "good.npz"
    sj.examples.scalar_game().save(good)
    symbols = {**dict(np.load(good)), **changes}
    bad = tmp_path / name
    np.savez(bad, **symbols)
    return bad


def test_load_game_refuses_a_foreign_format_tag(tmp_path):
    bad = _resaved(tmp_path, "foreign.npz", format=np.asarray("other.Format/9"))
    pattern = r"foreign\.npz'.*format tag 'other\.Format/9', expected 'stackjax\.LQGame/1'"
    with pytest.raises(ValueError, match=pattern):
        sj.load_game(bad)


def test_load_game_accepts_a_file_without_format_tag(tmp_path):
    good = tmp_path / "good.npz"
    sj.examples.scalar_game().save(good)
    symbols = dict(np.load(good))
    del symbols["format"]
    np.savez(tmp_path / "untagged.npz", **symbols)
    assert float(sj.load_game(tmp_path / "untagged.npz").T) == float(symbols["T"])


def test_load_game_refuses_numbers_stored_as_text(tmp_path):
    bad = _resaved(tmp_path, "text_T.npz", T=np.asarray("1.0"))
    with pytest.raises(ValueError, match=r"text_T\.npz'.*stores `T` as <U3"):
        sj.load_game(bad)


def test_load_game_refuses_a_corrupt_file_naming_it(tmp_path):
    """Bytes flipped in the middle of the archive: the CRC check fails, the file is named."""
    good = tmp_path / "good.npz"
    sj.examples.scalar_game().save(good)
    data = bytearray(good.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 8] = bytes(b ^ 0xFF for b in data[middle : middle + 8])
    bad = tmp_path / "corrupt.npz"
    bad.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"corrupt\.npz' could not be read"):
        sj.load_game(bad)
