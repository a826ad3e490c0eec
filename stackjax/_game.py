"""Game definitions: the control-quadratic protocol and the linear-quadratic game `LQGame`.

docs/math.md §1 (model) and §3.1 (the control-quadratic class). Every solver in stackjax only needs
the pointwise coefficients of a game at one state and one regime (`Coefficients`); `LQGame`
provides them for the linear-quadratic model, and any user pytree with the same methods (see
`ControlQuadraticGame`) can be passed to `hjbi_residual`, `simulate` and the neural solver.

Shape legend: d state, k1 leader control, k2 follower control, n noise columns, m regimes;
a leading ``[2]`` axis is the player (0 = leader, 1 = follower).
"""

from __future__ import annotations

import os
import zipfile
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from ._protocol import Coefficients as Coefficients
from ._protocol import ControlQuadraticGame as ControlQuadraticGame
from ._protocol import SymbolGame
from ._protocol import default_float_dtype as default_float_dtype
from ._validation import as_float_array, check_generator, fail, is_concrete

__all__ = [
    "LQGame",
    "make_lq_game",
    "load_game",
]


# Symbols of docs/math.md and their shapes, in terms of the dimension letters.
_MODEL_SHAPES: dict[str, tuple[str, ...]] = {
    "A": ("m", "d", "d"),
    "B1": ("m", "d", "k1"),
    "B2": ("m", "d", "k2"),
    "b": ("m", "d"),
    "C": ("m", "n", "d", "d"),
    "D1": ("m", "n", "d", "k1"),
    "D2": ("m", "n", "d", "k2"),
    "s": ("m", "n", "d"),
}
_COST_SHAPES: dict[str, tuple[str, ...]] = {
    "Q": ("2", "m", "d", "d"),
    "S1": ("2", "m", "k1", "d"),
    "S2": ("2", "m", "k2", "d"),
    "R11": ("2", "m", "k1", "k1"),
    "R12": ("2", "m", "k1", "k2"),
    "R22": ("2", "m", "k2", "k2"),
    "q": ("2", "m", "d"),
    "r1": ("2", "m", "k1"),
    "r2": ("2", "m", "k2"),
    "G": ("2", "m", "d", "d"),
    "g": ("2", "m", "d"),
    "g0": ("2", "m"),
}
_SYMMETRIC = ("Q", "R11", "R22", "G")
_REQUIRED = ("T", "Gamma", "A", "B1", "B2", "R11", "R22", "lam")
SYMBOLS = ("T", "Gamma", *_MODEL_SHAPES, *_COST_SHAPES, "lam", "x0")


class LQGame(SymbolGame, struct.PyTreeNode):
    """Entropy-regularized LQ Stackelberg game with Markov regime switching (docs/math.md §1-2).

    Build with `make_lq_game`, which validates the input. Per-regime model arrays carry a
    leading ``[m]`` axis, per-player cost arrays a leading ``[2, m]`` axis (0 = leader,
    1 = follower). Field names are docs/math.md's symbols; diffusion arrays carry the noise column
    ``l`` on the axis after the regime: ``C [m, n, d, d]``, ``D1 [m, n, d, k1]``, ``s [m, n, d]``.
    """

    T: jax.Array  # [] horizon
    Gamma: jax.Array  # [m, m] generator
    A: jax.Array
    B1: jax.Array
    B2: jax.Array
    b: jax.Array
    C: jax.Array
    D1: jax.Array
    D2: jax.Array
    s: jax.Array
    Q: jax.Array
    S1: jax.Array
    S2: jax.Array
    R11: jax.Array
    R12: jax.Array
    R22: jax.Array
    q: jax.Array
    r1: jax.Array
    r2: jax.Array
    G: jax.Array
    g: jax.Array
    g0: jax.Array
    lam: jax.Array  # [2] temperatures
    x0: jax.Array  # [d] reference initial state
    zero_sum: bool = struct.field(pytree_node=False, default=False)

    # Protocol (horizon, generator, temperatures, initial_state, num_regimes, state_dim
    # from `SymbolGame`) ---------------------------------------------------------------
    @property
    def leader_dim(self) -> int:
        return self.B1.shape[-1]

    @property
    def follower_dim(self) -> int:
        return self.B2.shape[-1]

    @property
    def noise_dim(self) -> int:
        return self.C.shape[-3]

    @property
    def has_controlled_diffusion(self) -> bool:
        """True unless ``D1`` and ``D2`` are identically zero (True when they are traced)."""
        if not is_concrete((self.D1, self.D2)):
            return True
        return bool(np.any(np.asarray(self.D1) != 0) or np.any(np.asarray(self.D2) != 0))

    @property
    def quadratic_value(self) -> bool:
        """The values are quadratic in ``x`` (the solver's quadratic head is exact)."""
        return True

    def coefficients(self, x: jax.Array, regime: jax.Array) -> Coefficients:
        """Pointwise coefficients (§3.1) at state ``x`` [d] in ``regime`` (int scalar)."""
        i = regime
        return Coefficients(
            beta=self.A[i] @ x + self.b[i],
            B1=self.B1[i],
            B2=self.B2[i],
            c=self.C[i] @ x + self.s[i],
            D1=self.D1[i],
            D2=self.D2[i],
            f0=jnp.einsum("d,kde,e->k", x, self.Q[:, i], x) + 2.0 * self.q[:, i] @ x,
            w1=self.S1[:, i] @ x + self.r1[:, i],
            w2=self.S2[:, i] @ x + self.r2[:, i],
            R11=self.R11[:, i],
            R12=self.R12[:, i],
            R22=self.R22[:, i],
        )

    def terminal_cost(self, x: jax.Array, regime: jax.Array) -> jax.Array:
        """[2] terminal costs ``x.G x + 2 g.x + g0`` in ``regime``."""
        i = regime
        return jnp.einsum("d,kde,e->k", x, self.G[:, i], x) + 2.0 * self.g[:, i] @ x + self.g0[:, i]

    def terminal_hessian(self, regime: jax.Array) -> jax.Array:
        """[2, d, d] Hessians ``G + G^T`` of the terminal costs in ``regime`` (constant in ``x``).

        Optional part of the protocol: a game that provides it lets the solver apply the
        terminal cost's Hessian to the diffusion columns as one matrix product per point
        instead of Hessian-vector products by autodiff.
        """
        G = self.G[:, regime]
        return G + jnp.swapaxes(G, -1, -2)

    # Conversion -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The symbols as a dict (``make_lq_game(**game.to_dict())`` round-trips)."""
        out: dict[str, Any] = {name: getattr(self, name) for name in SYMBOLS}
        out["zero_sum"] = self.zero_sum
        return out

    def validate(self) -> None:
        """Re-runs `make_lq_game`'s checks on the current values (e.g. after ``replace``);
        raises ``ValueError`` naming the symbol. Traced values are not checked."""
        make_lq_game(**self.to_dict())

    def save(self, path) -> str:
        """Writes the game to a ``.npz`` file readable by `load_game`; returns the file name
        (``.npz`` is appended when ``path`` has no such suffix, as `numpy.savez` does; a
        leading ``~`` is expanded)."""
        path = os.path.expanduser(os.fspath(path))
        if not path.endswith(".npz"):
            path += ".npz"
        arrays = {k: np.asarray(v) for k, v in self.to_dict().items() if k != "zero_sum"}
        arrays["zero_sum"] = np.asarray(bool(self.zero_sum))
        arrays["format"] = np.asarray(_FORMAT)
        np.savez(path, **arrays)
        return path

    def replace_temperatures(self, lam) -> LQGame:
        """Copy of the game with temperatures ``lam`` [2] (validated)."""
        return make_lq_game(**{**self.to_dict(), "lam": lam})


_FORMAT = "stackjax.LQGame/1"


def load_game(path) -> LQGame:
    """Reads a game saved by `LQGame.save` (or any ``.npz`` with the symbols of docs/math.md §0).

    ``path`` may omit the ``.npz`` suffix; a leading ``~`` is expanded. Nothing is unpickled.
    Raises ``FileNotFoundError`` for a missing file; ``ValueError`` naming the file for a
    truncated, corrupt (CRC) or foreign file, a ``format`` tag other than
    ``"stackjax.LQGame/1"`` (files without a tag are read as plain symbol archives), an unknown
    symbol, a symbol stored as text, booleans or complex numbers, or a ``zero_sum`` entry that
    is not a boolean; and `make_lq_game`'s errors for invalid values.
    """
    name = os.path.expanduser(os.fspath(path))
    if not os.path.isfile(name) and os.path.isfile(name + ".npz"):
        name += ".npz"
    if not os.path.isfile(name):
        raise FileNotFoundError(f"load_game: no file {name!r} (nor {name + '.npz'!r}).")
    if not zipfile.is_zipfile(name):
        raise ValueError(
            f"load_game: {name!r} is not a .npz archive (a truncated file, a .npy array or "
            "another format). Fix: save games with LQGame.save."
        )
    try:
        with np.load(name, allow_pickle=False) as data:
            symbols = {k: data[k] for k in data.files}
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as err:
        raise ValueError(
            f"load_game: {name!r} could not be read ({err}). Fix: save it again."
        ) from err
    if "format" in symbols:
        tag = symbols.pop("format")
        found = tag.item() if tag.shape == () and tag.dtype.kind in "US" else tag
        if isinstance(found, bytes):
            found = found.decode("utf-8", "replace")
        if found != _FORMAT:
            raise ValueError(
                f"load_game: {name!r} has format tag {found!r}, expected {_FORMAT!r}: it was not "
                "written by this version's LQGame.save. Fix: rebuild the game with make_lq_game "
                "and save it again."
            )
    unknown = sorted(set(symbols) - set(SYMBOLS) - {"zero_sum"})
    if unknown:
        raise ValueError(
            f"load_game: {name!r} holds entries that are not game symbols: {unknown}. Fix: keep "
            f"only {list(SYMBOLS)} and zero_sum."
        )
    if "zero_sum" in symbols:
        flag = symbols["zero_sum"]
        if flag.shape != () or flag.dtype.kind not in "bi" or int(flag) not in (0, 1):
            raise ValueError(
                f"load_game: {name!r} has zero_sum = {flag!r} ({flag.dtype}); expected a boolean."
                " Fix: save the game with LQGame.save."
            )
        symbols["zero_sum"] = bool(flag)
    for key, arr in symbols.items():
        if key != "zero_sum" and arr.dtype.kind not in "fiu":
            shown = np.array2string(arr.ravel()[:4], threshold=4)
            raise ValueError(
                f"load_game: {name!r} stores `{key}` as {arr.dtype} (entries {shown}); expected "
                "real numbers. Fix: store numbers, not text, booleans or complex numbers (save the "
                "game with LQGame.save)."
            )
    return make_lq_game(**symbols)


def _fail(symbol: str, problem: str, fix: str) -> None:
    fail("make_lq_game", symbol, problem, fix)


def _min_eig(matrix: np.ndarray) -> float:
    return float(np.linalg.eigvalsh(0.5 * (matrix + matrix.T)).min())


def make_lq_game(
    *,
    T=None,
    Gamma=None,
    A=None,
    B1=None,
    B2=None,
    R11=None,
    R22=None,
    lam=None,
    b=None,
    C=None,
    D1=None,
    D2=None,
    s=None,
    Q=None,
    S1=None,
    S2=None,
    R12=None,
    q=None,
    r1=None,
    r2=None,
    G=None,
    g=None,
    g0=None,
    x0=None,
    zero_sum: bool = False,
) -> LQGame:
    """Validates docs/math.md's symbols and builds an `LQGame`.

    Shapes (docs/math.md §0): ``Gamma [m, m]``, ``A [m, d, d]``, ``B1 [m, d, k1]``,
    ``B2 [m, d, k2]``, ``b [m, d]``, ``C [m, n, d, d]``, ``D1 [m, n, d, k1]``,
    ``D2 [m, n, d, k2]``, ``s [m, n, d]``;
    per player ``Q [2, m, d, d]``, ``S1 [2, m, k1, d]``, ``S2 [2, m, k2, d]``,
    ``R11 [2, m, k1, k1]``, ``R12 [2, m, k1, k2]``, ``R22 [2, m, k2, k2]``, ``q [2, m, d]``,
    ``r1 [2, m, k1]``, ``r2 [2, m, k2]``, ``G [2, m, d, d]``, ``g [2, m, d]``, ``g0 [2, m]``;
    ``lam [2]`` temperatures, ``T`` horizon, ``x0 [d]`` reference initial state. Optional
    symbols default to zero (``n = 1`` when none of ``C, D1, D2, s`` is given).

    With ``zero_sum=True`` (docs/math.md §6) only the leader's costs matter: leave the follower's
    rows zero (they are filled with minus the leader's) or give exactly minus the leader's.

    Raises:
      TypeError: naming the symbol, for text, booleans, complex numbers or anything else that
        is not an array of real numbers (like `make_game`), and a ``zero_sum`` that is not a
        bool.
      ValueError: naming the symbol, what was expected, what was received and the fix, for
        wrong shapes, non-finite entries, an invalid generator, asymmetric ``Q, R11, R22, G``,
        negative temperatures, ``T <= 0``, and violated well-posedness conditions (§4.5) at the
        terminal time (where they can be checked before solving).
    """
    given = dict(
        T=T, Gamma=Gamma, A=A, B1=B1, B2=B2, b=b, C=C, D1=D1, D2=D2, s=s, Q=Q, S1=S1, S2=S2,
        R11=R11, R12=R12, R22=R22, q=q, r1=r1, r2=r2, G=G, g=g, g0=g0, lam=lam, x0=x0,
    )  # fmt: skip
    for name in _REQUIRED:
        if given[name] is None:
            _fail(name, "is required but was not given", f"pass `{name}=` (docs/math.md §0)")
    if not isinstance(zero_sum, bool | np.bool_):
        fail("make_lq_game", "zero_sum", f"must be a bool, got {type(zero_sum).__name__} "
             f"{zero_sum!r}", "pass zero_sum=True or False", error=TypeError)  # fmt: skip
    dtype = default_float_dtype()
    concrete = all(is_concrete(v) for v in given.values() if v is not None)

    def as_array(name):
        # As `make_game`: text, booleans and complex numbers are refused (TypeError).
        return as_float_array(given[name], name, dtype)

    Gamma = as_array("Gamma")
    check_generator(Gamma, "Gamma", "make_lq_game")
    A = as_array("A")
    if A.ndim != 3 or A.shape[1] != A.shape[2]:
        _fail("A", f"must have shape [m, d, d], got {A.shape}",
              "stack one d x d drift matrix per regime on a leading axis")  # fmt: skip
    B1, B2 = as_array("B1"), as_array("B2")
    for name, arr in (("B1", B1), ("B2", B2)):
        if arr.ndim != 3:
            _fail(name, f"must have shape [m, d, k], got {arr.shape}",
                  "stack one d x k control matrix per regime on a leading axis")  # fmt: skip
    dims = {"2": 2, "m": Gamma.shape[0], "d": A.shape[-1], "k1": B1.shape[-1], "k2": B2.shape[-1]}
    for name in ("k1", "k2"):
        if dims[name] < 1:
            _fail("B1" if name == "k1" else "B2", "has zero control columns",
                  "every player needs at least one control dimension")  # fmt: skip
    n = None
    for name, axis in (("C", 1), ("D1", 1), ("D2", 1), ("s", 1)):
        if given[name] is not None:
            shape = np.shape(given[name])  # (text etc. is refused below, naming the symbol)
            if len(shape) > axis:
                n = shape[axis]
                break
    dims["n"] = 1 if n is None else n

    arrays: dict[str, jax.Array] = {"Gamma": Gamma}
    for name, letters in {**_MODEL_SHAPES, **_COST_SHAPES}.items():
        expected = tuple(dims[letter] for letter in letters)
        arr = jnp.zeros(expected, dtype) if given[name] is None else as_array(name)
        if arr.shape != expected:
            legend = ", ".join(f"{letter}={dims[letter]}" for letter in dict.fromkeys(letters))
            _fail(name, f"must have shape [{', '.join(letters)}] = {expected} ({legend}; m from "
                  f"Gamma, d from A, k1 from B1, k2 from B2, n from C/D1/D2/s), got {arr.shape}",
                  "reshape it; per-player costs carry a leading axis of size 2 "
                  "(0 = leader, 1 = follower) before the regime axis")  # fmt: skip
        arrays[name] = arr
    T_arr = as_array("T")
    if T_arr.shape != ():
        _fail("T", f"must be a scalar, got shape {T_arr.shape}", "pass a float horizon")
    lam_arr = as_array("lam")
    if lam_arr.shape != (2,):
        _fail("lam", f"must have shape [2] (leader, follower), got {lam_arr.shape}",
              "pass lam=(lambda_1, lambda_2)")  # fmt: skip
    x0_arr = jnp.zeros((dims["d"],), dtype) if x0 is None else as_array("x0")
    if x0_arr.shape != (dims["d"],):
        _fail("x0", f"must have shape [d] = ({dims['d']},), got {x0_arr.shape}",
              "pass an initial state of the state dimension")  # fmt: skip

    if zero_sum:
        arrays = _fill_zero_sum(arrays, concrete)

    if concrete:
        _check_values(arrays, float(T_arr), np.asarray(lam_arr), np.asarray(x0_arr), zero_sum)

    return LQGame(T=T_arr, lam=lam_arr, x0=x0_arr, zero_sum=bool(zero_sum), **arrays)


def _fill_zero_sum(arrays: dict[str, jax.Array], concrete: bool) -> dict[str, jax.Array]:
    out = dict(arrays)
    for name in _COST_SHAPES:
        arr = arrays[name]
        leader, follower = arr[0], arr[1]
        if concrete:
            f = np.asarray(follower)
            if np.any(f != 0) and not np.allclose(f, -np.asarray(leader), rtol=1e-12, atol=1e-12):
                _fail(name, "has a follower row that is neither zero nor minus the leader's row "
                      "in a zero-sum game", f"leave `{name}[1]` zero (it is filled with "
                      f"-`{name}[0]`) or pass zero_sum=False")  # fmt: skip
        out[name] = jnp.stack([leader, -leader])
    return out


def _check_values(arrays, T: float, lam: np.ndarray, x0: np.ndarray, zero_sum: bool) -> None:
    np_arrays = {k: np.asarray(v, dtype=np.float64) for k, v in arrays.items()}
    for name, arr in [*np_arrays.items(), ("lam", lam), ("x0", x0), ("T", np.asarray(T))]:
        if not np.all(np.isfinite(arr)):
            _fail(name, "has non-finite entries (NaN or inf)", "replace them by finite numbers")
    if T <= 0:
        _fail("T", f"must be > 0, got {T}", "pass a positive horizon")
    if np.any(lam < 0):
        _fail("lam", f"temperatures must be >= 0, got {lam}",
              "use lam >= 0 (0 gives the classical, deterministic-policy game)")  # fmt: skip
    for name in _SYMMETRIC:
        arr = np_arrays[name]
        asym = np.abs(arr - np.swapaxes(arr, -1, -2)).max()
        if asym > 1e-10 * max(1.0, float(np.abs(arr).max())):
            _fail(
                name,
                f"must be symmetric in its last two axes (max |M - M^T| = {asym:.3g})",
                f"pass the symmetric part ({name} + {name}^T) / 2, which defines the same cost",
            )
    _check_terminal_well_posedness(np_arrays, lam, zero_sum)


def _check_terminal_well_posedness(a, lam: np.ndarray, zero_sum: bool) -> None:
    """(WP-F), (WP-L1), (WP-L2) of §4.5 at t = T, where the value is the terminal cost.

    With uncontrolled diffusion these conditions involve only ``R`` and hold for all t; with
    controlled diffusion the curvature ``sum_l D^T P D`` changes along the solution and is
    checked again while solving.
    """
    m = a["Gamma"].shape[0]
    for i in range(m):
        # R-tilde at P = G (docs/math.md §7.1): R^{ab}_k + sum_l D_a^T G_k D_b.
        def tilde(k, Ra, Da, Db):
            return a[Ra][k, i] + np.einsum("lda,de,leb->ab", a[Da][i], a["G"][k, i], a[Db][i])

        R11_1, R12_1, R22_1 = (
            tilde(0, "R11", "D1", "D1"),
            tilde(0, "R12", "D1", "D2"),
            tilde(0, "R22", "D2", "D2"),
        )
        R21_2, R22_2 = tilde(1, "R12", "D1", "D2").T, tilde(1, "R22", "D2", "D2")  # fmt: skip
        where = (
            f"in regime {i} at the terminal time (R-tilde = R + sum_l D^T G D, docs/math.md §4.5)"
        )
        if zero_sum:
            if _min_eig(-R22_1) <= 0:
                _fail("R22", f"of the leader must be negative definite {where} (ZS-F): the "
                      "maximizer's problem is unbounded", "use R22[0] = -gamma^2 I with gamma "
                      "large enough (H-infinity attenuation level)")  # fmt: skip
            if _min_eig(R11_1) <= 0:
                _fail("R11", f"of the leader must be positive definite {where} (ZS-L)",
                      "make R11[0] symmetric positive definite")  # fmt: skip
            continue
        if _min_eig(R22_2) <= 0:
            _fail("R22", f"of the follower must be positive definite {where} (WP-F): the "
                  f"follower's best response is not unique (min eigenvalue {_min_eig(R22_2):.3g})",
                  "make R22[1] symmetric positive definite")  # fmt: skip
        Lam = -np.linalg.solve(R22_2, R21_2)
        Rbar = R11_1 + R12_1 @ Lam + Lam.T @ R12_1.T + Lam.T @ R22_1 @ Lam
        if _min_eig(Rbar) <= 0:
            _fail("R11", f"(with R12, R22 of the leader and the follower's reaction) gives a "
                  f"reduced leader curvature R-bar that is not positive definite {where} "
                  f"(WP-L1, min eigenvalue {_min_eig(Rbar):.3g})", "increase the leader's "
                  "R11[0] or make its joint control cost [[R11, R12], [R21, R22]] positive "
                  "definite")  # fmt: skip
        if lam[0] > 0 and _min_eig(R11_1) <= 0:
            _fail("R11", f"of the leader must be positive definite when lam[0] > 0 {where} "
                  "(WP-L2: the leader's exploration covariance problem is unbounded)",
                  "make R11[0] positive definite or set lam[0] = 0")  # fmt: skip
