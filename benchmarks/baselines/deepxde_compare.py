"""stackjax vs DeepXDE (PyTorch backend) on the same coupled exploratory HJB system.

Problem. `stackjax.examples.random_game(jax.random.key(seed), d=d, m=2)`: leader and follower
controls 2 + 2, noise dimension ``n = d``, state-dependent but **uncontrolled** diffusion
(``D1 = D2 = 0``), follower cross term (Stackelberg != Nash), temperatures 0.1. The unknowns
are the ``2m`` value functions ``V_{k,i}(t, x)`` (both players, every regime) of the coupled
exploratory HJB system of docs/math.md §5.1 on ``[0, T] x R^d``. With ``D = 0`` the optimised
Stackelberg Hamiltonian (docs/math.md §4.1-4.4) is an explicit quadratic function of the gradients
plus the diffusion term ``1/2 sum_l c^l.M c^l`` (``c^l = C^l x + s^l``), so it is transcribed
to torch as closed-form batched linear algebra (`TorchHamiltonian`; the constant matrices
``Lambda``, ``Rbar^{-1}`` and the entropy/exploration constants are precomputed in numpy, an
advantage for the DeepXDE side).

Methods (same problem, same batch ``B`` of collocation points per step, Adam):

* ``deepxde``: `deepxde.data.TimePDE` on ``GeometryXTime(Hypercube, TimeDomain)`` with
  ``B`` uniform ("pseudo") domain points re-drawn every step (`PDEPointResampler(period=1)`,
  as stackjax draws a fresh batch every step), one `deepxde.nn.FNN` ``[d+1, W x L, 2m]``
  (tanh, Glorot normal) for all ``2m`` outputs, derivatives with ``dde.grad.jacobian`` and
  ``dde.grad.hessian`` (full spatial Hessian of every output, the way the DeepXDE docs teach),
  the terminal condition **hard-constrained** with ``net.apply_output_transform``
  (``V = psi(x) + S tau NN``, ``tau = (T - t) / T``) and inputs scaled with
  ``net.apply_feature_transform`` (``z = (x - x0) / s``, ``2 tau - 1``), exactly the
  transforms stackjax uses. Loss: the ``2m`` mean squared residuals divided by ``S_{k,i} / T``
  with loss weights ``1 / (2m)`` (= stackjax's normalised loss). ``model.compile("adam",
  lr)``, constant learning rate. Step time = wall time of ``model.train(iterations=K)`` / K.
* ``sj-mlp`` (like for like): the **same** MLP, transforms, initial weights (copied from the
  DeepXDE network), box sampler, loss and constant-lr Adam in JAX; the residual is
  `stackjax.hjbi_residual` (``jax.jacrev`` + ``jax.hessian`` of the ``[2, m]`` value
  function per point, `jax.vmap` over the batch); ``K`` steps (sampling + residual + grad +
  optax Adam update) in one jitted ``lax.scan``. Step time = warm chunk time / K.
* ``sj-default``: stackjax's Adam step as shipped: `stackjax.make_train_step` with
  ``SolverConfig(adam=AdamConfig(batch_size=B), gauss_newton=GaussNewtonConfig(steps=0),
  operator=OperatorConfig(gradient_weight=0), layout=LayoutConfig(points_per_time=1))``
  (quadratic head with a Chebyshev time basis, exact terminal condition,
  Hessian-vector-product operators, Gaussian sampler ``x ~ N(x0, I)``, default warm-up +
  cosine learning-rate schedule), ``K`` steps per jitted ``lax.scan``. The loss is plain
  collocation like DeepXDE's: the state-gradient rows and grouped times, on by default for
  LQ games from d = 5, serve `solve`'s Gauss-Newton iterations and are switched off here.
* ``sj-solve`` (accuracy table only): `stackjax.solve` with its default configuration (for
  these LQ games 20 Gauss-Newton iterations, no Adam steps; time includes compilation).

Error: relative L2 value error ``||V - V_ref|| / ||V_ref||`` of every (player, regime) against
`stackjax.riccati_reference`, at 2048 points ``t ~ U[0, T]``, ``x ~ N(x0, I)`` (docs/math.md §9.2);
the table shows the maximum over the ``2m`` (player, regime) pairs.

Phases for each d:

1. Check (float64): the DeepXDE ``pde`` function (torch Hamiltonian + ``dde.grad``) applied to
   the Riccati value (exact quadratic in x per point, exact ``dV/dt`` from the ODE) must
   reproduce `stackjax.hjbi_residual` of the Riccati reference; and the DeepXDE network with
   its transforms must give the same residual as ``sj-mlp`` with the copied weights. Both are
   reported relative to ``max |dV/dt|`` and must be <= 1e-10 (else the script stops).
2. Step time: ``--reps`` rounds, each timing ``K`` steps of deepxde, sj-default and sj-mlp in
   turn (interleaved); medians and ratios.
3. Accuracy: each method trained from its initial state, evaluated between chunks (evaluation
   time excluded). ``N`` steps for all; then the **same wall time** ``W`` = DeepXDE's training
   time for ``N`` steps: sj-default is re-run with ``num_steps`` = the number of its steps that
   fit in ``W`` (so its schedule decays over the run) and stopped at ``W``; sj-mlp continues
   (constant lr) until ``W``.

Torch threads: DeepXDE's step is timed with each of ``--threads`` (default 1 and 2) via
``torch.set_num_threads``, interleaved with the rest; the faster setting is used for the ratios
and the accuracy phase (on the shared 2-core reference VM, 2 torch threads were 15-35x *slower*
than 1 under load from other processes, OpenMP threads waiting for a busy core). XLA uses its
own thread pool. Training dtype ``--dtype`` (default float32 on both sides: DeepXDE's and JAX's
default); the check runs in float64.

Run: ``python benchmarks/baselines/deepxde_compare.py`` (d in {2, 10} plus the check and step
time at d = 20, N = 500 steps; 32 min on the shared 2-core VM at load average 13) or
``--quick`` (d = 2, N = 100, one timing round, 1 torch thread, no sj-default-W / sj-solve runs;
mostly compilation: 191 s wall / 69 s CPU at load average 12). The DeepXDE half runs only when
deepxde and torch are importable (``pip install -e '.[bench]'``); otherwise the stackjax half
runs and the install hint is printed. Writes
``<out>/deepxde_compare.json`` (JSON lines) and ``<out>/deepxde_compare.png``.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("DDE_BACKEND", "pytorch")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

import stackjax as sj  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import (  # noqa: E402
    DEFAULT_RESULTS_DIR,
    block,
    device_label,
    device_string,
    format_table,
    median,
    timestamp,
    write_jsonl,
)

INSTALL_HINT = "DeepXDE not installed: pip install -e '.[bench]'"
CHECK_TOL = 1e-10
PROBE_STEPS = 3  # DeepXDE steps per torch-thread probe
PROBE_FACTOR = 3.0  # thread counts slower than this times the fastest probe are not timed
EVAL_POINTS = 2048


def import_deepxde():
    """``(deepxde, torch)`` with the PyTorch backend, or ``(None, reason)`` if unavailable."""
    try:
        import torch  # noqa: F401
    except ImportError as err:
        return None, f"{INSTALL_HINT} ({err})"
    try:
        import deepxde as dde
    except ImportError as err:
        return None, f"{INSTALL_HINT} ({err})"
    if dde.backend.backend_name != "pytorch":
        return None, f"DeepXDE backend is {dde.backend.backend_name!r}; set DDE_BACKEND=pytorch"
    import torch

    return dde, torch


# ---------------------------------------------------------------------------------------------
# Game data and the Stackelberg Hamiltonian in torch (docs/math.md §3-4 with D1 = D2 = 0).
# ---------------------------------------------------------------------------------------------


class TorchHamiltonian:
    """Residuals ``R_{k,i}`` of the coupled exploratory HJB system in torch, batched over points.

    Valid for a general-sum `LQGame` without controlled diffusion (``D1 = D2 = 0``): then
    ``Rt^{ab}_k = R^{ab}_k`` are constants, ``rho^a_k = S^a_k x + r^a_k + 1/2 B_a^T y_k``,
    ``h0_k = f0_k + y_k.(A x + b) + 1/2 sum_l c^l.M_k c^l`` (docs/math.md §3.2); the follower's
    reaction ``mu_2 = kappa + Lambda mu_1``, the leader's mean ``mu_1 = -Rbar^{-1} rhobar``
    (§4.1-4.2) and ``H^*_k = h_k(mu_1, mu_2) + tr(R^{11}_k Sigma_1) + tr(R^{22}_k Sigma_2)
    - lambda_k/2 log det(2 pi e Sigma_k)`` (§4.4), ``Sigma_k = lambda_k/2 (R^{kk}_k)^{-1}``.

    Args:
      game: the `LQGame`.
      torch: the torch module.
      dtype: torch dtype of the constants.
    """

    def __init__(self, game, torch, dtype):
        if game.zero_sum:
            raise ValueError("TorchHamiltonian implements general-sum games only.")
        a = {k: np.asarray(getattr(game, k), np.float64) for k in _FIELDS}
        if np.any(a["D1"] != 0) or np.any(a["D2"] != 0):
            raise ValueError(
                "TorchHamiltonian needs D1 = D2 = 0 (no controlled diffusion); use "
                "random_game(..., controlled_diffusion=False)."
            )
        self.torch = torch
        self.m, self.d = a["A"].shape[0], a["A"].shape[-1]
        self.k1 = a["B1"].shape[-1]
        lam1, lam2 = a["lam"]
        k1, k2 = self.k1, a["B2"].shape[-1]
        const, lam_, rbar_inv, r22_inv, wmat = [], [], [], [], []
        for i in range(self.m):
            R11, R12, R22 = a["R11"][:, i], a["R12"][:, i], a["R22"][:, i]
            Lam = -np.linalg.solve(R22[1], R12[1].T)  # [k2, k1]
            Rbar = R11[0] + R12[0] @ Lam + Lam.T @ R12[0].T + Lam.T @ R22[0] @ Lam
            cov1 = 0.5 * lam1 * np.linalg.inv(R11[0]) if lam1 > 0 else np.zeros((k1, k1))
            cov2 = 0.5 * lam2 * np.linalg.inv(R22[1]) if lam2 > 0 else np.zeros((k2, k2))
            ent = np.zeros(2)
            for k, (lam, dim, W) in enumerate(((lam1, k1, R11[0]), (lam2, k2, R22[1]))):
                if lam > 0:
                    ent[k] = -0.5 * lam * dim * np.log(np.pi * np.e * lam)
                    ent[k] += 0.5 * lam * np.linalg.slogdet(W)[1]
            explore = np.einsum("kab,ba->k", R11, cov1) + np.einsum("kab,ba->k", R22, cov2)
            const.append(explore + ent)
            lam_.append(Lam)
            rbar_inv.append(np.linalg.inv(Rbar))
            r22_inv.append(np.linalg.inv(R22[1]))
            wmat.append(R12[0] + Lam.T @ R22[0])  # [k1, k2]
        t = lambda v: torch.as_tensor(np.asarray(v), dtype=dtype)  # noqa: E731
        self.A, self.b, self.B1, self.B2 = t(a["A"]), t(a["b"]), t(a["B1"]), t(a["B2"])
        self.C, self.s = t(a["C"]), t(a["s"])
        self.Q, self.q = t(a["Q"]), t(a["q"])
        self.S1, self.S2, self.r1, self.r2 = t(a["S1"]), t(a["S2"]), t(a["r1"]), t(a["r2"])
        self.R11, self.R12, self.R22 = t(a["R11"]), t(a["R12"]), t(a["R22"])
        self.G, self.g, self.g0 = t(a["G"]), t(a["g"]), t(a["g0"])
        self.Gamma = t(a["Gamma"])
        self.const = t(np.stack(const))  # [m, 2]
        self.Lam, self.Rbar_inv = t(np.stack(lam_)), t(np.stack(rbar_inv))
        self.R22f_inv, self.W = t(np.stack(r22_inv)), t(np.stack(wmat))

    def terminal(self, x):
        """[N, 2, m] ``psi_{k,i}(x)`` at states ``x`` [N, d]."""
        torch = self.torch
        quad = torch.einsum("nd,kmde,ne->nkm", x, self.G, x)
        return quad + 2.0 * torch.einsum("kmd,nd->nkm", self.g, x) + self.g0

    def hamiltonian(self, x, grad, hess):
        """[N, 2, m] ``H^*_{k,i}``.

        Args:
          x: [N, d] states.  grad: [N, 2, m, d] ``grad V``.  hess: [N, 2, m, d, d] ``Hess V``.
        """
        torch = self.torch
        out = []
        for i in range(self.m):
            y = grad[:, :, i]  # [N, 2, d]
            M = hess[:, :, i]  # [N, 2, d, d]
            beta = x @ self.A[i].T + self.b[i]  # [N, d]
            c = torch.einsum("lde,ne->nld", self.C[i], x) + self.s[i]  # [N, n, d]
            f0 = torch.einsum("nd,kde,ne->nk", x, self.Q[:, i], x) + 2.0 * x @ self.q[:, i].T
            rho1 = torch.einsum("kad,nd->nka", self.S1[:, i], x) + self.r1[:, i]
            rho1 = rho1 + 0.5 * y @ self.B1[i]  # [N, 2, k1]
            rho2 = torch.einsum("kad,nd->nka", self.S2[:, i], x) + self.r2[:, i]
            rho2 = rho2 + 0.5 * y @ self.B2[i]  # [N, 2, k2]
            h0 = f0 + torch.einsum("nkd,nd->nk", y, beta)
            h0 = h0 + 0.5 * torch.einsum("nld,nkde,nle->nk", c, M, c)
            kappa = -rho2[:, 1] @ self.R22f_inv[i].T  # [N, k2]
            Lam = self.Lam[i]
            rhobar = rho1[:, 0] + rho2[:, 0] @ Lam + kappa @ self.W[i].T  # [N, k1]
            mu1 = -rhobar @ self.Rbar_inv[i].T
            mu2 = kappa + mu1 @ Lam.T  # [N, k2]
            R11, R12, R22 = self.R11[:, i], self.R12[:, i], self.R22[:, i]
            h = (
                torch.einsum("na,kab,nb->nk", mu1, R11, mu1)
                + 2.0 * torch.einsum("na,kab,nb->nk", mu1, R12, mu2)
                + torch.einsum("na,kab,nb->nk", mu2, R22, mu2)
                + 2.0
                * (torch.einsum("nka,na->nk", rho1, mu1) + torch.einsum("nka,na->nk", rho2, mu2))
                + h0
            )
            out.append(h + self.const[i])
        return torch.stack(out, dim=-1)  # [N, 2, m]

    def residual(self, x, v, v_t, grad, hess):
        """[N, 2, m] ``dV/dt + H^* + sum_j Gamma_ij V_{k,j}`` (docs/math.md §5.3)."""
        return v_t + self.hamiltonian(x, grad, hess) + v @ self.Gamma.T


_FIELDS = (
    "T", "Gamma", "A", "B1", "B2", "b", "C", "D1", "D2", "s", "Q", "S1", "S2", "R11", "R12",
    "R22", "q", "r1", "r2", "G", "g", "g0", "lam",
)  # fmt: skip


# ---------------------------------------------------------------------------------------------
# DeepXDE model (the way its documentation teaches a time-dependent PDE).
# ---------------------------------------------------------------------------------------------


def make_pde(dde, ham: TorchHamiltonian, scale: np.ndarray, horizon: float):
    """DeepXDE ``pde(X, Y)``: ``X = [x, t]`` [N, d + 1], ``Y`` [N, 2m] (column ``k m + i``).

    Returns the ``2m`` residuals ``R_{k,i} T / S_{k,i}`` as a list of [N, 1] tensors.
    """
    torch = ham.torch
    d, m = ham.d, ham.m
    norm = torch.as_tensor(horizon / scale.reshape(-1))  # [2m]

    def pde(X, Y):
        n = X.shape[0]
        rows = [dde.grad.jacobian(Y, X, i=c) for c in range(2 * m)]  # each [N, d + 1]
        v_t = torch.stack([r[:, d] for r in rows], dim=1).reshape(n, 2, m)
        grad = torch.stack([r[:, :d] for r in rows], dim=1).reshape(n, 2, m, d)
        hess = torch.stack(
            [
                torch.cat(
                    [
                        torch.cat(
                            [dde.grad.hessian(Y, X, component=c, i=a, j=b) for b in range(d)],
                            dim=1,
                        )[:, None, :]
                        for a in range(d)
                    ],
                    dim=1,
                )
                for c in range(2 * m)
            ],
            dim=1,
        ).reshape(n, 2, m, d, d)
        r = ham.residual(X[:, :d], Y.reshape(n, 2, m), v_t, grad, hess).reshape(n, 2 * m)
        r = r * norm.to(r.dtype)
        return [r[:, j : j + 1] for j in range(2 * m)]

    return pde


def build_deepxde(dde, game, ham, scale, args, seed):
    """`deepxde.Model` (compiled) for the game: hard terminal condition, scaled inputs."""
    torch = ham.torch
    d, m = ham.d, ham.m
    T = float(game.T)
    x0 = np.asarray(game.x0, np.float64)
    half = args.box * args.state_scale
    geom = dde.geometry.Hypercube(x0 - half, x0 + half)
    geomtime = dde.geometry.GeometryXTime(geom, dde.geometry.TimeDomain(0.0, T))
    data = dde.data.TimePDE(
        geomtime, make_pde(dde, ham, scale, T), [], num_domain=args.batch, num_boundary=0,
        num_initial=0, train_distribution="pseudo",
    )  # fmt: skip
    torch.manual_seed(seed)
    net = dde.nn.FNN([d + 1] + [args.width] * args.depth + [2 * m], "tanh", "Glorot normal")
    x0_t = torch.as_tensor(x0)
    S = torch.as_tensor(scale.reshape(1, 2, m))

    def features(X):
        z = (X[:, :d] - x0_t.to(X.dtype)) / args.state_scale
        tau = (T - X[:, d:]) / T
        return torch.cat([z, 2.0 * tau - 1.0], dim=1)

    def output(X, Y):
        n = X.shape[0]
        tau = ((T - X[:, d:]) / T)[:, :, None]  # [N, 1, 1]
        v = ham.terminal(X[:, :d]) + S.to(Y.dtype) * tau * Y.reshape(n, 2, m)
        return v.reshape(n, 2 * m)

    net.apply_feature_transform(features)
    net.apply_output_transform(output)
    model = dde.Model(data, net)
    model.compile("adam", lr=args.lr, loss_weights=[1.0 / (2 * m)] * (2 * m))
    return model


def deepxde_train(dde, model, steps: int) -> float:
    """Trains ``steps`` Adam steps (fresh points every step); returns the wall seconds."""
    resampler = dde.callbacks.PDEPointResampler(period=1)
    start = time.perf_counter()
    model.train(iterations=steps, display_every=10**9, verbose=0, callbacks=[resampler])
    return time.perf_counter() - start


def deepxde_values(model, t, x, m) -> np.ndarray:
    """[N, 2, m] values of a DeepXDE model at ``t`` [N], ``x`` [N, d]."""
    X = np.concatenate([np.asarray(x), np.asarray(t)[:, None]], axis=1)
    return np.asarray(model.predict(X)).reshape(-1, 2, m)


def torch_mlp_params(net, dtype):
    """A copy of the FNN's weights as JAX ``[(W [in, out], b [out]), ...]``.

    Copied explicitly: on the CPU, ``jnp.asarray`` of the numpy view of a torch tensor may share
    its memory, which torch's optimizer then updates in place.
    """

    def copy(tensor):
        return jnp.array(np.array(tensor.detach().cpu().numpy(), copy=True), dtype)

    return [(copy(lin.weight).T, copy(lin.bias)) for lin in net.linears]


# ---------------------------------------------------------------------------------------------
# JAX side.
# ---------------------------------------------------------------------------------------------


def init_mlp(key, sizes, dtype):
    """Glorot-normal weights, zero biases: ``[(W [in, out], b [out]), ...]`` (for --quick
    without torch)."""
    params = []
    for k, (n_in, n_out) in zip(jax.random.split(key, len(sizes) - 1), zip(sizes[:-1], sizes[1:])):
        std = math.sqrt(2.0 / (n_in + n_out))
        params.append((std * jax.random.normal(k, (n_in, n_out), dtype), jnp.zeros(n_out, dtype)))
    return params


def mlp_value(params, scale, game, state_scale, t, x):
    """[2, m] ``psi(x) + S tau NN(z, 2 tau - 1)`` (the DeepXDE model's transforms) at one point."""
    m = game.num_regimes
    tau = (game.T - t) / game.T
    h = jnp.concatenate([(x - game.x0) / state_scale, (2.0 * tau - 1.0)[None]])
    for W, b in params[:-1]:
        h = jnp.tanh(h @ W + b)
    W, b = params[-1]
    out = (h @ W + b).reshape(2, m)
    psi = jax.vmap(lambda i: game.terminal_cost(x, i), out_axes=1)(jnp.arange(m))
    return psi + scale * tau * out


def mlp_residuals(params, scale, game, state_scale, t, x):
    """[N, 2, m] normalised residuals ``R T / S`` via `stackjax.hjbi_residual`."""

    def one(ti, xi):
        value_fn = lambda s, z: mlp_value(params, scale, game, state_scale, s, z)  # noqa: E731
        return sj.hjbi_residual(value_fn, game, ti, xi)

    return jax.vmap(one)(t, x) * game.T / scale


def make_mlp_chunk(game, scale, args, steps):
    """Jitted ``(params, opt_state, step, key) -> (params, opt_state, step, losses [steps])``."""
    optimizer = optax.adam(args.lr)
    d = game.state_dim
    dtype = scale.dtype
    half = args.box * args.state_scale

    def train_step(carry, _):
        params, opt_state, step, key = carry
        kt, kx = jax.random.split(jax.random.fold_in(key, step))
        t = game.T * jax.random.uniform(kt, (args.batch,), dtype)
        x = game.x0 + jax.random.uniform(kx, (args.batch, d), dtype, -half, half)

        def loss_fn(p):
            return jnp.mean(mlp_residuals(p, scale, game, args.state_scale, t, x) ** 2)

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state, step + 1, key), loss

    @jax.jit
    def chunk(params, opt_state, step, key):
        (params, opt_state, step, _), losses = jax.lax.scan(
            train_step, (params, opt_state, step, key), None, length=steps
        )
        return params, opt_state, step, losses

    return optimizer, chunk


def make_default_chunk(game, args, num_steps, steps):
    """stackjax's own solver step (`make_train_step`), ``steps`` per jitted scan."""
    config = sj.SolverConfig(
        adam=sj.AdamConfig(steps=num_steps, batch_size=args.batch),
        gauss_newton=sj.GaussNewtonConfig(steps=0),
        sampler=sj.SamplerConfig(scale=args.state_scale),
        operator=sj.OperatorConfig(gradient_weight=0.0),
        layout=sj.LayoutConfig(dtype=args.dtype, points_per_time=1),
    )
    init, train_step = sj.make_train_step(game, config)
    model = sj.network_value(game, config, None, None).model  # the networks' description

    @jax.jit
    def chunk(state, key):
        def body(s, _):
            s, metrics = train_step(s, jax.random.fold_in(key, s.step))
            return s, metrics["loss"]

        return jax.lax.scan(body, state, None, length=steps)

    return init, chunk, config, model


def rel_errors(values, ref_values) -> np.ndarray:
    """[2, m] relative L2 errors over the points (docs/math.md §9.2)."""
    diff = np.asarray(values, np.float64) - ref_values
    return np.sqrt(np.sum(diff**2, axis=0) / np.sum(ref_values**2, axis=0))


# ---------------------------------------------------------------------------------------------
# Phase 1: checks.
# ---------------------------------------------------------------------------------------------


def check_against_stackjax(dde, torch, game, ref, scale, args, num_points=64):
    """Float64 checks of the DeepXDE residual against stackjax (phase 1 of the module docstring).

    Returns max |R_torch - R_stackjax| / max |dV/dt| at the Riccati value, and the relative
    differences of residuals and values between the DeepXDE network and sj-mlp.
    """
    ham = TorchHamiltonian(game, torch, torch.float64)
    key = jax.random.key(123)
    t, x = sj.sample_points(game, key, num_points)
    t = jnp.minimum(t, 0.99 * game.T)

    # Riccati value: per point, V(s, z) = q(P(t), z) + (s - t) q(dP/dt(t), z) has the exact
    # value, gradient, Hessian and time derivative of the reference at (t, x).
    @jax.jit
    def reference_terms(ref, t, x):
        rates = jax.vmap(lambda s: jax.jvp(ref.coefficients, (s,), (jnp.ones_like(s),)))(t)
        r = jax.vmap(lambda ti, xi: sj.hjbi_residual(ref.value, ref.game, ti, xi))(t, x)
        v_t = jax.vmap(lambda ti, xi: jax.jvp(lambda s: ref.value(s, xi), (ti,), (1.0,))[1])(t, x)
        return rates, r, v_t

    (coef, rate), r_sj, v_t = reference_terms(ref, t, x)
    r_sj, v_t = np.asarray(r_sj), np.asarray(v_t)
    P, p, c = (torch.as_tensor(np.asarray(a)) for a in coef)
    dP, dp, dc = (torch.as_tensor(np.asarray(a)) for a in rate)
    tt = torch.as_tensor(np.asarray(t))
    X = torch.as_tensor(np.concatenate([np.asarray(x), np.asarray(t)[:, None]], 1))
    X.requires_grad_(True)
    z, s = X[:, : ham.d], X[:, ham.d]

    def quad(P, p, c):
        return (
            torch.einsum("nd,nkmde,ne->nkm", z, P, z) + 2.0 * torch.einsum("nkmd,nd->nkm", p, z) + c
        )

    Y = quad(P, p, c) + (s - tt)[:, None, None] * quad(dP, dp, dc)
    Y = Y.reshape(num_points, -1)
    pde = make_pde(dde, ham, np.ones((2, ham.m)), float(game.T))
    dde.grad.clear()
    r_dde = torch.cat(pde(X, Y), dim=1).detach().numpy().reshape(num_points, 2, ham.m) / float(
        game.T
    )
    dde.grad.clear()
    denom = float(np.max(np.abs(v_t)))
    riccati = {
        "torch_vs_stackjax": float(np.max(np.abs(r_dde - r_sj)) / denom),
        "torch_residual": float(np.max(np.abs(r_dde)) / denom),
        "stackjax_residual": float(np.max(np.abs(r_sj)) / denom),
    }
    # Same random MLP (DeepXDE FNN with its transforms vs sj-mlp with the copied weights).
    dde.config.set_default_float("float64")
    model = build_deepxde(dde, game, ham, scale, args, seed=7)
    params = torch_mlp_params(model.net, jnp.float64)
    Xn = np.concatenate([np.asarray(x), np.asarray(t)[:, None]], 1)
    r_net = np.concatenate(model.predict(Xn, operator=model.data.pde), 1).reshape(
        num_points, 2, ham.m
    )
    v_net = deepxde_values(model, t, x, ham.m)

    @jax.jit
    def mlp_terms(params, scale, game, t, x):
        r = mlp_residuals(params, scale, game, args.state_scale, t, x)
        v = jax.vmap(lambda ti, xi: mlp_value(params, scale, game, args.state_scale, ti, xi))(t, x)
        return r, v

    r_mlp, v_mlp = (np.asarray(a) for a in mlp_terms(params, jnp.asarray(scale), game, t, x))
    mlp = {
        "residual_diff": float(np.max(np.abs(r_net - r_mlp)) / np.max(np.abs(r_mlp))),
        "value_diff": float(np.max(np.abs(v_net - v_mlp)) / np.max(np.abs(v_mlp))),
    }
    return {"riccati": riccati, "mlp": mlp, "points": num_points}


# ---------------------------------------------------------------------------------------------
# Phases 2 and 3: step time (interleaved) and accuracy vs steps / wall time.
# ---------------------------------------------------------------------------------------------


def cast_game(game, dtype):
    """The game with every floating array cast to ``dtype``."""

    def cast(leaf):
        if isinstance(leaf, jax.Array | np.ndarray) and jnp.issubdtype(leaf.dtype, jnp.floating):
            return jnp.asarray(leaf, dtype)
        return leaf

    return jax.tree.map(cast, game)


def count_params(tree) -> int:
    return int(sum(np.size(leaf) for leaf in jax.tree.leaves(tree)))


class Case:
    """Everything built once per ``d``: the game, reference, scales and evaluation points."""

    def __init__(self, d, args, torch):
        self.d, self.m = d, 2
        self.game = sj.examples.random_game(jax.random.key(args.seed), d=d, m=self.m)
        self.ref = sj.riccati_reference(self.game)
        self.scale = np.asarray(
            sj_normalization(self.game, args.state_scale).value_scale, np.float64
        )  # [2, m]
        self.jdtype = jnp.dtype(args.dtype)
        self.tdtype = None if torch is None else getattr(torch, args.dtype)
        self.game_c = cast_game(self.game, self.jdtype)
        self.scale_c = jnp.asarray(self.scale, self.jdtype)
        self.t_eval, self.x_eval = sj.sample_points(self.game, jax.random.key(2024), EVAL_POINTS)
        self.v_ref = np.asarray(jax.jit(jax.vmap(self.ref.value))(self.t_eval, self.x_eval))
        self.t_eval_c = self.t_eval.astype(self.jdtype)
        self.x_eval_c = self.x_eval.astype(self.jdtype)
        self.mlp_sizes = [d + 1] + [args.width] * args.depth + [2 * self.m]

    def error(self, values) -> np.ndarray:
        return rel_errors(values, self.v_ref)


def sj_normalization(game, state_scale):
    """stackjax's value scales ``S_{k,i}`` (`estimate_normalization`, used by both sides)."""
    from stackjax._solver._networks import estimate_normalization

    return estimate_normalization(game, state_scale)


class DeepXDERunner:
    def __init__(self, dde, torch, case, args, seed):
        dde.config.set_default_float(args.dtype)
        self.dde, self.case = dde, case
        ham = TorchHamiltonian(case.game, torch, case.tdtype)
        self.model = build_deepxde(dde, case.game, ham, case.scale, args, seed)
        self.initial_params = torch_mlp_params(self.model.net, case.jdtype)
        self.steps = 0

    def train(self, steps) -> float:
        seconds = deepxde_train(self.dde, self.model, steps)
        self.steps += steps
        return seconds

    def values(self):
        c = self.case
        return deepxde_values(self.model, np.asarray(c.t_eval), np.asarray(c.x_eval), c.m)


class MLPRunner:
    def __init__(self, case, args, params, chunk_steps):
        self.case = case
        self.optimizer, chunk = make_mlp_chunk(case.game_c, case.scale_c, args, chunk_steps)
        self.params = params
        self.opt_state = self.optimizer.init(params)
        self.step = jnp.zeros((), jnp.int32)
        self.key = jax.random.key(args.seed + 1)
        tic = time.perf_counter()
        self.chunk = chunk.lower(self.params, self.opt_state, self.step, self.key).compile()
        self.compile_seconds = time.perf_counter() - tic
        self.chunk_steps = chunk_steps
        self.num_params = count_params(params)
        c, state_scale = case, args.state_scale
        self._values = jax.jit(
            jax.vmap(
                lambda p, t, x: mlp_value(p, c.scale_c, c.game_c, state_scale, t, x),
                in_axes=(None, 0, 0),
            )
        )

    def reset(self, params):
        """Restarts training from ``params`` (reuses the compiled chunk)."""
        self.params, self.opt_state = params, self.optimizer.init(params)
        self.step = jnp.zeros((), jnp.int32)

    def train(self) -> float:
        tic = time.perf_counter()
        out = block(self.chunk(self.params, self.opt_state, self.step, self.key))
        seconds = time.perf_counter() - tic
        self.params, self.opt_state, self.step, _ = out
        return seconds

    @property
    def steps(self) -> int:
        return int(self.step)

    def values(self):
        return np.asarray(self._values(self.params, self.case.t_eval_c, self.case.x_eval_c))


class DefaultRunner:
    def __init__(self, case, args, num_steps, chunk_steps):
        self.case = case
        self.init, chunk, self.config, self.sj_model = make_default_chunk(
            case.game, args, num_steps, chunk_steps
        )
        self.seed = args.seed
        self.state = self.init(jax.random.key(args.seed + 2))
        self.key = jax.random.key(args.seed + 3)
        tic = time.perf_counter()
        self.chunk = chunk.lower(self.state, self.key).compile()
        self.compile_seconds = time.perf_counter() - tic
        self.chunk_steps = chunk_steps
        self.num_params = count_params(self.state.params)
        c, model = case, self.sj_model
        self._values = jax.jit(
            jax.vmap(
                lambda s, t, x: model.value(s.params, s.norm, c.game_c, t, x), in_axes=(None, 0, 0)
            )
        )

    def reset(self):
        """Restarts training from the initial state (reuses the compiled chunk)."""
        self.state = self.init(jax.random.key(self.seed + 2))

    def train(self) -> float:
        tic = time.perf_counter()
        self.state, _ = block(self.chunk(self.state, self.key))
        return time.perf_counter() - tic

    @property
    def steps(self) -> int:
        return int(self.state.step)

    def values(self):
        return np.asarray(self._values(self.state, self.case.t_eval_c, self.case.x_eval_c))


def time_steps(case, args, dde, torch, log):
    """Phase 2: ``reps`` interleaved rounds of ``K`` steps of every method; medians per step.

    DeepXDE is timed once per torch thread count (``deepxde-<n>t``); ``deepxde`` is the faster.
    """
    K = args.time_steps
    runners = {"sj-default": DefaultRunner(case, args, args.steps, K)}
    order = []
    if dde is not None:
        runner = DeepXDERunner(dde, torch, case, args, seed=args.seed)
        params = runner.initial_params
        for n in args.threads:
            runners[f"deepxde-{n}t"] = runner
            order.append(f"deepxde-{n}t")
    else:
        params = init_mlp(jax.random.key(args.seed), case.mlp_sizes, case.jdtype)
    runners["sj-mlp"] = MLPRunner(case, args, params, K)
    order += ["sj-default", "sj-mlp"]
    first, times = {}, {name: [] for name in order}

    def one(name, steps=K):
        r = runners[name]
        if name.startswith("deepxde"):
            torch.set_num_threads(int(name.split("-")[1][:-1]))
            return r.train(steps)
        return r.train()

    probe = {}
    if dde is not None:  # DeepXDE set-up, then a short probe per thread count
        one(order[0], 1)
        for name in [n for n in order if n.startswith("deepxde")]:
            probe[name] = one(name, PROBE_STEPS) / PROBE_STEPS
        fastest = min(probe.values())
        for name, value in probe.items():
            if value > PROBE_FACTOR * fastest:
                order.remove(name)
                del times[name]
                log(f"  d={case.d}: {name} probe {1e3 * value:.1f} ms/step > {PROBE_FACTOR:g} x "
                    f"the fastest ({1e3 * fastest:.1f}); not timed further")  # fmt: skip
    for name in order:  # warm-up (JAX: first run after AOT compile)
        first[name] = one(name)
    for rep in range(args.reps):
        for name in order:
            times[name].append(one(name))
        log(f"  d={case.d} timing round {rep + 1}/{args.reps}: "
            + ", ".join(f"{n} {1e3 * times[n][-1] / K:.2f} ms/step" for n in order))  # fmt: skip
    per_step = {n: median(times[n]) / K for n in order}
    if dde is not None:
        best = min(
            (n for n in args.threads if f"deepxde-{n}t" in per_step),
            key=lambda n: per_step[f"deepxde-{n}t"],
        )
        per_step["deepxde"] = per_step[f"deepxde-{best}t"]
        torch.set_num_threads(best)
        log(f"  d={case.d}: DeepXDE uses {best} torch thread(s) from here on")
    rec = {
        "phase": "step_time",
        "steps_per_round": K,
        "repetitions": args.reps,
        "step_seconds": per_step,
        "round_seconds": times,
        "first_round_seconds": first,
        "deepxde_probe_step_seconds": probe,
        "torch_threads": torch.get_num_threads() if dde is not None else None,
        "compile_seconds": {
            "sj-default": runners["sj-default"].compile_seconds,
            "sj-mlp": runners["sj-mlp"].compile_seconds,
        },
        "num_params": {
            "sj-default": runners["sj-default"].num_params,
            "sj-mlp": runners["sj-mlp"].num_params,
            "deepxde": runners["sj-mlp"].num_params if dde is not None else None,
        },
    }
    if dde is not None:
        rec["ratio_deepxde_over_sj_default"] = per_step["deepxde"] / per_step["sj-default"]
        rec["ratio_deepxde_over_sj_mlp"] = per_step["deepxde"] / per_step["sj-mlp"]
    return rec, {"sj-default": runners["sj-default"], "sj-mlp": runners["sj-mlp"]}


def _record(history, runner_steps, wall, values, case):
    err = case.error(values)
    history.append(
        {"step": runner_steps, "seconds": wall, "error": err, "max_error": float(err.max())}
    )


def accuracy(case, args, dde, torch, step_seconds, log, compiled):
    """Phase 3: error vs steps and vs wall time (evaluation time excluded).

    ``compiled``: the phase-2 runners, reused (restarted) when their chunk length fits.
    """
    N, E = args.steps, max(args.steps // args.evals, 1)
    cap = args.max_steps_factor * N
    out = {}
    budget = None
    if dde is not None:
        runner = DeepXDERunner(dde, torch, case, args, seed=args.seed)
        params0 = runner.initial_params
        hist, wall = [], 0.0
        _record(hist, 0, 0.0, runner.values(), case)
        runner.train(1)  # DeepXDE's one-off set-up (first train call); counted as step 1
        while runner.steps < N:
            wall += runner.train(min(E, N - runner.steps))
            _record(hist, runner.steps, wall, runner.values(), case)
        budget = wall
        out["deepxde"] = hist
        err = hist[-1]["max_error"]
        log(f"  d={case.d} deepxde: {N} steps in {wall:.1f} s, max error {err:.2e}")
    else:
        params0 = init_mlp(jax.random.key(args.seed), case.mlp_sizes, case.jdtype)

    # stackjax default, schedule over N steps.
    runner = compiled["sj-default"]
    if runner.chunk_steps == E:
        runner.reset()
    else:
        runner = DefaultRunner(case, args, N, E)
    hist, wall = [], 0.0
    _record(hist, 0, 0.0, runner.values(), case)
    while runner.steps < N:
        wall += runner.train()
        _record(hist, runner.steps, wall, runner.values(), case)
    out["sj-default"] = hist
    log(
        f"  d={case.d} sj-default: {N} steps in {wall:.1f} s, max error {hist[-1]['max_error']:.2e}"
    )

    # stackjax default with the same wall time as DeepXDE (schedule over the steps that fit).
    if budget is not None and args.equal_time_default:
        fit = int(0.9 * budget / step_seconds["sj-default"])
        num = int(min(max(fit, N), cap))
        E2 = max(num // args.evals, 1)
        num = E2 * (num // E2)
        runner = DefaultRunner(case, args, num, E2)
        hist, wall = [], 0.0
        _record(hist, 0, 0.0, runner.values(), case)
        while runner.steps < num and wall < budget:
            wall += runner.train()
            _record(hist, runner.steps, wall, runner.values(), case)
        out["sj-default-W"] = hist
        log(f"  d={case.d} sj-default (W): {runner.steps} steps in {wall:.1f} s, "
            f"max error {hist[-1]['max_error']:.2e}")  # fmt: skip

    # Like for like: same MLP, same initial weights, constant lr; N steps, then on until W.
    runner = compiled["sj-mlp"]
    if runner.chunk_steps == E:
        runner.reset(params0)
    else:
        runner = MLPRunner(case, args, params0, E)
    hist, wall = [], 0.0
    _record(hist, 0, 0.0, runner.values(), case)
    while runner.steps < min(N, cap) or (
        budget is not None and wall < budget and runner.steps < cap
    ):
        wall += runner.train()
        _record(hist, runner.steps, wall, runner.values(), case)
    out["sj-mlp"] = hist
    log(f"  d={case.d} sj-mlp: {runner.steps} steps in {wall:.1f} s, "
        f"max error {hist[-1]['max_error']:.2e}")  # fmt: skip

    if not args.solve:
        return {"phase": "accuracy", "steps": N, "wall_budget_seconds": budget, "histories": out}
    # The full default solver (Gauss-Newton only for these LQ games), incl. compilation.
    config = sj.SolverConfig(
        adam=sj.AdamConfig(batch_size=args.batch),
        sampler=sj.SamplerConfig(scale=args.state_scale),
        layout=sj.LayoutConfig(dtype=args.dtype),
    )
    sol = sj.solve(
        case.game, jax.random.key(args.seed + 4), config, verbose=False, diagnostic_points=0
    )
    values = np.asarray(jax.jit(jax.vmap(sol.value))(case.t_eval_c, case.x_eval_c))
    seconds = float(sol.diagnostics["train_seconds"])
    adam = int(sol.config.adam.steps)
    out["sj-solve"] = [{"step": adam, "seconds": seconds, "error": case.error(values),
                        "max_error": float(case.error(values).max())}]  # fmt: skip
    gn = int(sol.state.refine_step)
    log(f"  d={case.d} sj-solve: {adam} Adam + {gn} Gauss-Newton in {seconds:.1f} s "
        f"(incl. compile), max error {out['sj-solve'][0]['max_error']:.2e}")  # fmt: skip
    return {"phase": "accuracy", "steps": N, "wall_budget_seconds": budget, "histories": out}


def at_steps(hist, steps):
    """Record at exactly ``steps`` (or None)."""
    match = [h for h in hist if h["step"] == steps]
    return match[0] if match else None


def at_time(hist, seconds):
    """Last record with wall time <= ``seconds`` (the state a user has after that time)."""
    ok = [h for h in hist if h["seconds"] <= seconds * (1.0 + 1e-9)]
    return ok[-1] if ok else None


# ---------------------------------------------------------------------------------------------
# Output.
# ---------------------------------------------------------------------------------------------

METHODS = ("deepxde", "sj-default", "sj-default-W", "sj-mlp", "sj-solve")


def step_rows(records):
    rows = []
    for rec in records:
        s, n = rec["step"]["step_seconds"], rec["step"]["num_params"]
        dde = s.get("deepxde")
        fmt = lambda v: "-" if v is None else f"{1e3 * v:.2f}"  # noqa: E731
        ratio = lambda a: "-" if dde is None else f"{dde / s[a]:.1f}"  # noqa: E731
        per_thread = sorted(k for k in s if k.startswith("deepxde-"))
        threads = " / ".join(fmt(s[k]) for k in per_thread) if per_thread else "-"
        rows.append([
            rec["d"], rec["batch"], n["sj-mlp"], n["sj-default"], threads, fmt(s["sj-default"]),
            fmt(s["sj-mlp"]), ratio("sj-default"), ratio("sj-mlp"),
            f"{rec['step']['compile_seconds']['sj-default']:.1f}",
            f"{rec['step']['compile_seconds']['sj-mlp']:.1f}",
        ])  # fmt: skip
    return rows


STEP_HEADERS = [
    "d", "B", "mlp par", "sj par", "dde ms (1t / 2t)", "sj-def ms", "sj-mlp ms", "dde/sj-def",
    "dde/sj-mlp", "sj-def comp s", "sj-mlp comp s",
]  # fmt: skip


def accuracy_rows(records):
    rows = []
    for rec in records:
        if "accuracy" not in rec:
            continue
        acc = rec["accuracy"]
        N, W = acc["steps"], acc["wall_budget_seconds"]
        for name in METHODS:
            hist = acc["histories"].get(name)
            if not hist:
                continue
            at_n = at_steps(hist, N) if name != "sj-default-W" else None
            if name == "sj-solve":  # its own default budget (Gauss-Newton iterations)
                at_n = hist[-1]
            at_w = at_time(hist, W) if W is not None and name != "sj-solve" else None
            if name == "sj-default" and "sj-default-W" in acc["histories"]:
                at_w = None  # its schedule is over N steps; the W run is sj-default-W
            rows.append([
                rec["d"], name,
                "-" if at_n is None else f"{at_n['seconds']:.1f}",
                "-" if at_n is None else f"{at_n['max_error']:.2e}",
                "-" if at_w is None else at_w["step"],
                "-" if at_w is None else f"{at_w['seconds']:.1f}",
                "-" if at_w is None else f"{at_w['max_error']:.2e}",
            ])  # fmt: skip
    return rows


ACC_HEADERS = ["d", "method", "s @N", "err @N", "steps @W", "s @W", "err @W"]


def plot(records, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"deepxde": "C3", "sj-default": "C0", "sj-default-W": "C9", "sj-mlp": "C2"}
    styles = ["-", "--", ":", "-."]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for j, rec in enumerate(records):
        if "accuracy" not in rec:
            continue
        for name, hist in rec["accuracy"]["histories"].items():
            if name not in colors:
                continue
            steps = [max(h["step"], 1) for h in hist]
            secs = [max(h["seconds"], 1e-3) for h in hist]
            errs = [h["max_error"] for h in hist]
            kw = dict(color=colors[name], ls=styles[j % len(styles)], label=f"{name}, d={rec['d']}")
            if name != "sj-default-W":
                axes[0].plot(steps, errs, **kw)
            if name != "sj-default":
                axes[1].plot(secs, errs, **kw)
        W = rec["accuracy"]["wall_budget_seconds"]
        if W is not None:
            axes[1].axvline(W, color="0.6", ls=styles[j % len(styles)], lw=0.8)
    for ax, xlabel in zip(axes, ("Adam steps", "training wall time [s] (excl. compile/eval)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("max rel. L2 value error (players x regimes)")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_title("error vs steps")
    axes[1].set_title("error vs wall time (grey: DeepXDE's time W)")
    axes[0].legend(fontsize=7)
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def goal_lines(records):
    """The issue's goal at d = 10: >= 5x step speed-up and at least as accurate at equal time."""
    lines = []
    for rec in records:
        if rec["d"] != 10 or "ratio_deepxde_over_sj_default" not in rec["step"]:
            continue
        ratio = rec["step"]["ratio_deepxde_over_sj_default"]
        ratio_mlp = rec["step"]["ratio_deepxde_over_sj_mlp"]
        acc = rec.get("accuracy")
        if acc is None or "sj-default-W" not in acc["histories"]:
            continue
        W = acc["wall_budget_seconds"]
        e_dde = at_time(acc["histories"]["deepxde"], W)["max_error"]
        e_sj = at_time(acc["histories"]["sj-default-W"], W)
        e_sj = float("nan") if e_sj is None else e_sj["max_error"]
        lines.append(
            f"goal d=10: step time DeepXDE / stackjax default = {ratio:.1f}x "
            f"({'MET' if ratio >= 5 else 'MISSED'}, target >= 5x; like-for-like MLP: "
            f"{ratio_mlp:.1f}x); error after DeepXDE's wall time {W:.0f} s: stackjax "
            f"{e_sj:.2e} vs DeepXDE {e_dde:.2e} ({'MET' if e_sj <= e_dde else 'MISSED'})"
        )
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--quick", action="store_true",
        help="d = 2, N = 100, one round, 1 torch thread, no sj-default-W / sj-solve runs",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, default=DEFAULT_RESULTS_DIR, help="results dir")
    parser.add_argument("--dims", type=int, nargs="+", default=[2, 10])
    parser.add_argument("--steps", type=int, default=500, help="N: Adam steps (default 500)")
    parser.add_argument("--batch", type=int, default=256, help="collocation points per step")
    parser.add_argument("--width", type=int, default=64, help="MLP width (deepxde, sj-mlp)")
    parser.add_argument("--depth", type=int, default=3, help="MLP hidden layers")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam lr (deepxde, sj-mlp)")
    parser.add_argument("--box", type=float, default=math.sqrt(3.0),
                        help="hypercube half-width in units of --state-scale (default sqrt 3: "
                        "the per-coordinate variance of x ~ N(x0, s^2 I))")  # fmt: skip
    parser.add_argument("--state-scale", type=float, default=1.0)
    parser.add_argument(
        "--time-only-dims",
        type=int,
        nargs="*",
        default=[20],
        help="dimensions with the check and step timing only (no accuracy)",
    )
    parser.add_argument("--time-steps", type=int, default=None,
                        help="K: steps per timing round (default N / evals)")  # fmt: skip
    parser.add_argument("--reps", type=int, default=3, help="interleaved timing rounds")
    parser.add_argument("--evals", type=int, default=20, help="evaluations per training run")
    parser.add_argument("--max-steps-factor", type=int, default=50,
                        help="cap stackjax runs at this many times N steps")  # fmt: skip
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2],
                        help="torch thread counts to time (faster one used)")  # fmt: skip
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.time_steps is None:
        args.time_steps = max(args.steps // args.evals, 1)
    args.solve = args.equal_time_default = not args.quick
    if args.quick:
        args.dims, args.steps, args.time_steps, args.reps, args.evals = [2], 100, 25, 1, 4
        args.time_only_dims = []
        args.threads = args.threads[:1]

    def log(msg):
        print(msg, flush=True)

    dde, torch = import_deepxde()
    label = device_label()
    label["uptime_start"] = _uptime()
    if dde is None:
        log(torch)  # the install hint
        torch = None
    else:
        label.update(torch=torch.__version__, deepxde=dde.__version__)
    log(f"device: {device_string(label)}")
    if dde is not None:
        log(f"torch {torch.__version__} (threads timed: {args.threads}), deepxde "
            f"{dde.__version__} (backend {dde.backend.backend_name})")  # fmt: skip
    log(f"load: {label['uptime_start']}")
    log(f"N = {args.steps} steps, batch {args.batch}, MLP {args.depth} x {args.width} tanh, "
        f"Adam lr {args.lr} (deepxde, sj-mlp), dtype {args.dtype}\n")  # fmt: skip

    records, stamp = [], timestamp()
    for d in list(args.dims) + [d for d in args.time_only_dims if d not in args.dims]:
        tic = time.perf_counter()
        case = Case(d, args, torch)
        rec = {"benchmark": "deepxde_compare", "d": d, "m": case.m, "batch": args.batch,
               "width": args.width, "depth": args.depth, "lr": args.lr, "dtype": args.dtype,
               "box_halfwidth": args.box * args.state_scale, "seed": args.seed,
               "deepxde": dde is not None}  # fmt: skip
        if dde is not None:
            rec["check"] = check_against_stackjax(dde, torch, case.game, case.ref, case.scale, args)
            chk = rec["check"]
            log(f"d={d} check (float64, relative to max|dV/dt|): torch vs stackjax residual at "
                f"the Riccati value {chk['riccati']['torch_vs_stackjax']:.1e} (residuals "
                f"{chk['riccati']['torch_residual']:.1e} / "
                f"{chk['riccati']['stackjax_residual']:.1e}); DeepXDE net vs sj-mlp residual "
                f"{chk['mlp']['residual_diff']:.1e}, value "
                f"{chk['mlp']['value_diff']:.1e}")  # fmt: skip
            worst = max(chk["riccati"]["torch_vs_stackjax"], chk["mlp"]["residual_diff"])
            if not worst <= CHECK_TOL:
                raise SystemExit(f"check failed: {worst:.2e} > {CHECK_TOL:g}")
        rec["step"], compiled = time_steps(case, args, dde, torch, log)
        steps = rec["step"]["step_seconds"]
        if d in args.dims:
            rec["accuracy"] = accuracy(case, args, dde, torch, steps, log, compiled)
        rec.update(timestamp=stamp, device=label, uptime_end=_uptime(),
                   case_seconds=time.perf_counter() - tic)  # fmt: skip
        records.append(rec)
        log(f"d={d} done in {rec['case_seconds']:.0f} s; load: {rec['uptime_end']}\n")

    log("Step time (median of interleaved rounds; ms per Adam step, batch B):")
    log(format_table(STEP_HEADERS, step_rows(records)))
    log("\nAccuracy (max over players x regimes of the relative L2 value error, 2048 points "
        "t ~ U[0,T], x ~ N(x0, I)); @N: after N steps; @W: after DeepXDE's wall time for N "
        "steps (last evaluation at or before W):")  # fmt: skip
    log(format_table(ACC_HEADERS, accuracy_rows(records)))
    for line in goal_lines(records):
        log(line)
    if dde is None:
        log(INSTALL_HINT)
    args.out.mkdir(parents=True, exist_ok=True)
    json_path = write_jsonl(args.out / "deepxde_compare.json", records)
    png_path = args.out / "deepxde_compare.png"
    plot(records, png_path)
    log(f"\nwrote {json_path} and {png_path}")
    return records


def _uptime() -> str:
    try:
        load = os.getloadavg()
    except OSError:  # pragma: no cover
        return timestamp()
    return f"{timestamp()} load average {load[0]:.2f}, {load[1]:.2f}, {load[2]:.2f}"


if __name__ == "__main__":
    main()
