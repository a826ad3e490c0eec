"""A user environment written from raw arrays, independent of `stackjax.simulate`, and the exact
values of linear-Gaussian policies in it (a Lyapunov ODE integrated with scipy)."""

import jax
import jax.numpy as jnp
import numpy as np
from scipy.integrate import solve_ivp

import stackjax as sj
from stackjax import rl

# Scalar state, two regimes: dX = (a_i X + b1 u1 + b2 u2 + c_i) dt + sig_i dW.
T, DT = 1.0, 0.01
RATES = np.array([0.8, 1.2])  # switching rates 0 -> 1 and 1 -> 0
A = np.array([-0.4, 0.1])
C = np.array([0.2, -0.2])
SIG = np.array([0.3, 0.5])
B1, B2 = 1.0, 0.6
# Costs of player k (regime independent): q x^2 + r1 u1^2 + r2 u2^2 + 2 s u1 u2; terminal g x^2.
QX = np.array([1.0, 0.5])
R1 = np.array([1.0, 0.3])
R2 = np.array([0.4, 1.0])
S12 = np.array([0.1, 0.5])
GT = np.array([1.0, 0.5])
LAM = (0.4, 0.3)
X0 = 0.5


def user_env(x_scale=0.5, temperatures=LAM, leader_dim=1):
    """Environment with per-step Bernoulli regime switching (probability 1 - exp(-rate dt))."""
    n_steps = int(round(T / DT))

    def reset(key):
        kx, ki = jax.random.split(key)
        x = X0 + x_scale * jax.random.normal(kx, (1,))
        i = jax.random.bernoulli(ki).astype(jnp.int32)
        return (jnp.zeros((), jnp.int32), x, i), rl.Observation(jnp.zeros(()), x, i)

    def step(key, state, u1, u2):
        n, x, i = state
        kw, ks = jax.random.split(key)
        a, c, sig = jnp.asarray(A)[i], jnp.asarray(C)[i], jnp.asarray(SIG)[i]
        drift = a * x + B1 * u1[:1] + B2 * u2 + c
        x_new = x + drift * DT + sig * jnp.sqrt(DT) * jax.random.normal(kw, (1,))
        xs, v1, v2 = x[0], u1[0], u2[0]
        run = jnp.asarray(QX) * xs**2 + jnp.asarray(R1) * v1**2 + jnp.asarray(R2) * v2**2
        run = run + 2.0 * jnp.asarray(S12) * v1 * v2
        switch = jax.random.bernoulli(ks, 1.0 - jnp.exp(-jnp.asarray(RATES)[i] * DT))
        j = jnp.where(switch, 1 - i, i)
        n = n + 1
        done = n >= n_steps
        costs = run * DT + jnp.where(done, jnp.asarray(GT) * x_new[0] ** 2, 0.0)
        return (n, x_new, j), rl.Observation(n * DT, x_new, j), costs, done

    return rl.Environment(
        reset=reset, step=step, horizon=T, dt=DT, state_dim=1, leader_dim=leader_dim,
        follower_dim=1, num_regimes=2, temperatures=tuple(temperatures),
    )  # fmt: skip


# A fixed pair of linear-Gaussian policies, mu_k = -(L_k,i x + l_k,i), constant in time.
L_POL = np.array([[0.5, 0.8], [0.3, -0.2]])  # [player, regime]
ELL_POL = np.array([[0.1, -0.1], [0.0, 0.2]])
VAR_POL = np.array([[0.2, 0.3], [0.15, 0.1]])


def user_policy(t, x):
    L, ell, var = (jnp.asarray(a) for a in (L_POL, ELL_POL, VAR_POL))
    mean = -(L * x[0] + ell)  # [2, m]
    return sj.GaussianPolicy(
        mean_leader=mean[0][:, None], cov_leader=var[0][:, None, None],
        mean_follower=mean[1][:, None], cov_follower=var[1][:, None, None],
    )  # fmt: skip


def exact_values(t, x, temperatures=LAM):
    """[2, m] values of `user_policy` at (t, x) from the Lyapunov ODE (continuous time)."""
    gen = np.array([[-RATES[0], RATES[0]], [RATES[1], -RATES[1]]])
    L1, L2 = L_POL
    l1, l2 = ELL_POL
    v1, v2 = VAR_POL
    F = A - B1 * L1 - B2 * L2
    f0 = C - B1 * l1 - B2 * l2
    lam = np.asarray(temperatures)

    def rhs(s, y):
        P, e, g = y.reshape(3, 2, 2)  # [coef, player, regime]
        dP, de, dg = np.zeros((2, 2)), np.zeros((2, 2)), np.zeros((2, 2))
        for k in range(2):
            ent = -0.5 * lam[k] * np.log(2 * np.pi * np.e * (v1 if k == 0 else v2))
            dP[k] = -(QX[k] + R1[k] * L1**2 + R2[k] * L2**2 + 2 * S12[k] * L1 * L2
                      + 2 * P[k] * F + gen @ P[k])  # fmt: skip
            de[k] = -(R1[k] * L1 * l1 + R2[k] * L2 * l2 + S12[k] * (L1 * l2 + L2 * l1)
                      + P[k] * f0 + e[k] * F + gen @ e[k])  # fmt: skip
            dg[k] = -(R1[k] * (l1**2 + v1) + R2[k] * (l2**2 + v2) + 2 * S12[k] * l1 * l2
                      + ent + 2 * e[k] * f0 + SIG**2 * P[k] + gen @ g[k])  # fmt: skip
        return np.concatenate([dP.ravel(), de.ravel(), dg.ravel()])

    y_T = np.concatenate([np.repeat(GT, 2), np.zeros(4), np.zeros(4)])
    if t >= T:
        y = y_T
    else:
        y = solve_ivp(rhs, (T, t), y_T, rtol=1e-11, atol=1e-12).y[:, -1]
    P, e, g = y.reshape(3, 2, 2)
    return P * x**2 + 2 * e * x + g
