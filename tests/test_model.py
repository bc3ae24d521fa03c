"""Tests of fapm_jax/model.py against naive numpy references of the paper's equations."""

from __future__ import annotations

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fapm_jax.core.losses import r2_loss
from fapm_jax.core.model import (
    FAPMParams,
    average_models,
    init_params,
    interaction_matrix,
    interaction_part,
    linear_part,
    predict,
    round_to_tf32,
    with_rank_mask,
)

pytestmark = pytest.mark.usefixtures("strict_promotion")

N_FEAT, RANK = 6, 3

# Eager JAX compiles every primitive per shape; one jitted program per shape is much cheaper.
jpredict = jax.jit(predict)
jlinear = jax.jit(linear_part)
jinteraction = jax.jit(interaction_part)


def random_params(seed: int, n: int = N_FEAT, k: int = RANK, dtype=np.float64) -> FAPMParams:
    """Parameters with O(1) entries, so interactions matter (unlike the 0.01 init scale)."""
    rng = np.random.default_rng(seed)
    return FAPMParams(
        w0=jnp.asarray(rng.normal(), dtype),
        w=jnp.asarray(rng.normal(size=n), dtype),
        V=jnp.asarray(0.5 * rng.normal(size=(n, k)), dtype),
    )


def np_params(p: FAPMParams):
    return float(p.w0), np.asarray(p.w, np.float64), np.asarray(p.V, np.float64)


def naive_second_order(w0: float, w: np.ndarray, B: np.ndarray, x: np.ndarray) -> float:
    """Second-order Model ``w0 + Σ_i w_i x_i + Σ_{i<j} B_ij x_i x_j`` with plain loops, O(n²)."""
    n = len(w)
    y = w0
    for i in range(n):
        y += w[i] * x[i]
    for i in range(n):
        for j in range(i + 1, n):
            y += B[i, j] * x[i] * x[j]
    return y


def upper_B_from_V(V: np.ndarray) -> np.ndarray:
    """``B_ij = <v_i, v_j>`` for i < j, with explicit loops (independent of the module)."""
    n, k = V.shape
    B = np.zeros((n, n))
    for i in range(n):
        for j in range(i + 1, n):
            B[i, j] = sum(V[i, f] * V[j, f] for f in range(k))
    return B


def naive_predict_rows(p: FAPMParams, X: np.ndarray, B: np.ndarray | None = None) -> np.ndarray:
    w0, w, V = np_params(p)
    B = upper_B_from_V(V) if B is None else B
    X = np.asarray(X, np.float64)
    flat = X.reshape(-1, X.shape[-1])
    out = np.array([naive_second_order(w0, w, B, x) for x in flat])
    return out.reshape(X.shape[:-1])


# ------------------------------------------------------------------ prediction


def test_predict_equals_naive_double_sum_float64(x64):
    p = random_params(0)
    X = np.random.default_rng(1).uniform(-1, 1, (20, N_FEAT))
    got = np.asarray(jpredict(p, jnp.asarray(X)))
    assert got.dtype == np.float64
    ref_indep = naive_predict_rows(p, X)  # B from explicit loops over V
    B_module = np.asarray(interaction_matrix(p))  # B from the module
    ref_module_B = naive_predict_rows(p, X, B=B_module)
    # float64: O(nk) and O(n²) forms differ only by rounding of O(1) terms; 1e-12 abs.
    np.testing.assert_allclose(got, ref_indep, rtol=0, atol=1e-12)
    np.testing.assert_allclose(got, ref_module_B, rtol=0, atol=1e-12)


def test_predict_parts_float64(x64):
    p = random_params(2)
    X = np.random.default_rng(3).uniform(-1, 1, (15, N_FEAT))
    w0, w, V = np_params(p)
    lin_ref = np.array([w0 + sum(w[i] * x[i] for i in range(N_FEAT)) for x in X])
    B = upper_B_from_V(V)
    inter_ref = np.array([naive_second_order(0.0, np.zeros(N_FEAT), B, x) for x in X])
    # float64 rounding of O(1) sums: 1e-12 abs.
    np.testing.assert_allclose(np.asarray(jlinear(p, jnp.asarray(X))), lin_ref, atol=1e-12)
    np.testing.assert_allclose(np.asarray(jinteraction(p, jnp.asarray(X))), inter_ref, atol=1e-12)


def test_predict_float32_close_to_float64_reference():
    p = random_params(4, dtype=np.float32)
    X = np.random.default_rng(5).uniform(-1, 1, (20, N_FEAT)).astype(np.float32)
    got = np.asarray(jpredict(p, jnp.asarray(X)))
    assert got.dtype == np.float32
    ref = naive_predict_rows(p, X)  # float64 reference from the float32 parameters
    # float32: eps ≈ 1.2e-7 on O(1)-O(10) terms (the O(nk) form subtracts two squares); 2e-5 abs.
    np.testing.assert_allclose(got, ref, rtol=0, atol=2e-5)


def np_tf32(x: np.ndarray) -> np.ndarray:
    """float32 values rounded to 10 mantissa bits, to nearest with ties away from zero (frexp)."""
    x = np.asarray(x, np.float64)
    _, e = np.frexp(x)  # x = m 2^e, 0.5 <= |m| < 1: the last kept bit is worth 2^(e - 11)
    q = np.ldexp(1.0, e - 11)
    return np.sign(x) * np.floor(np.abs(x) / q + 0.5) * q


def test_round_to_tf32_against_frexp():
    rng = np.random.default_rng(0)
    x = (rng.normal(size=5000) * np.exp(rng.uniform(-20, 20, 5000))).astype(np.float32)
    x[:3] = [1 + 2**-11, -(1 + 2**-11), 0.0]  # ties round away from zero; zero stays
    got = np.asarray(jax.jit(round_to_tf32)(jnp.asarray(x)), np.float64)
    np.testing.assert_array_equal(got, np_tf32(x))
    assert got[0] == 1 + 2**-10 and got[1] == -(1 + 2**-10)
    assert np.isinf(np.asarray(round_to_tf32(jnp.asarray([np.inf], np.float32)))).all()


def _rounded_reference(p: FAPMParams, X: np.ndarray, rnd) -> np.ndarray:
    """Equation (1) in float64 with ``z = x [w | V]`` from operands rounded by ``rnd`` — what a
    TF32 or bfloat16 GEMM reads, accumulated exactly — and the squared term unrounded."""
    w0, w, V = np_params(p)
    X = np.asarray(X, np.float64)
    z = rnd(X) @ rnd(np.column_stack([w, V]))
    return w0 + z[:, 0] + 0.5 * np.sum(z[:, 1:] ** 2, axis=1) + (X * X) @ (-0.5 * np.sum(V**2, axis=1))


@pytest.mark.parametrize("precision", ["tf32", "bfloat16"])
def test_reduced_precision_predict_equals_rounded_operands(precision):
    """``predict(..., "tf32")`` on a CPU (emulated) and ``"bfloat16"`` equal the formula with
    the GEMM's operands rounded independently (numpy frexp for TF32, ml_dtypes for bfloat16), to float32
    accumulation (2e-5 abs on O(1) terms), and differ from the float32 prediction by about
    the operands' rounding (2^-11 for TF32, 2^-8 for bfloat16, relative to the terms)."""
    import ml_dtypes

    p = random_params(6, dtype=np.float32)
    X = np.random.default_rng(7).uniform(-1, 1, (50, N_FEAT)).astype(np.float32)
    rnd = (
        np_tf32
        if precision == "tf32"
        else (lambda a: np.asarray(a, np.float32).astype(ml_dtypes.bfloat16).astype(np.float64))
    )
    got = np.asarray(jax.jit(predict, static_argnums=2)(p, jnp.asarray(X), precision), np.float64)
    np.testing.assert_allclose(got, _rounded_reference(p, X, rnd), rtol=0, atol=2e-5)
    exact = naive_predict_rows(p, X)
    gap = np.max(np.abs(got - exact))
    unit = 2.0**-11 if precision == "tf32" else 2.0**-8
    assert 0.1 * unit < gap < 20 * unit  # the rounding shows, at its own size


def test_interaction_matrix_symmetric_zero_diagonal(x64):
    p = random_params(6)
    B = np.asarray(interaction_matrix(p))
    V = np.asarray(p.V)
    assert B.shape == (N_FEAT, N_FEAT)
    np.testing.assert_array_equal(np.diag(B), 0.0)
    np.testing.assert_array_equal(B, B.T)
    upper = upper_B_from_V(V)
    off = ~np.eye(N_FEAT, dtype=bool)
    # float64: inner products of length-3 vectors, 1e-13 abs.
    np.testing.assert_allclose(B[np.triu_indices(N_FEAT, 1)], upper[np.triu_indices(N_FEAT, 1)], atol=1e-13)
    np.testing.assert_allclose(B[off], (V @ V.T)[off], atol=1e-13)


def test_predict_batch_shapes_and_single_example(x64):
    p = random_params(7)
    X = np.random.default_rng(8).uniform(-1, 1, (3, 4, N_FEAT))
    got = np.asarray(jpredict(p, jnp.asarray(X)))
    assert got.shape == (3, 4)
    ref = naive_predict_rows(p, X)
    np.testing.assert_allclose(got, ref, atol=1e-12)  # float64, 1e-12 abs
    one = jpredict(p, jnp.asarray(X[1, 2]))
    assert one.shape == ()
    np.testing.assert_allclose(float(one), ref[1, 2], atol=1e-12)  # float64, 1e-12 abs


# ------------------------------------------------------------------ gradients (Equation (2))


def analytic_dyhat(p: FAPMParams, X: np.ndarray):
    """Per-row derivatives of Equation (2): d/dw0 = 1, d/dw_i = x_i,
    d/dv_if = x_i Σ_j v_jf x_j − v_if x_i² (loops over i, f)."""
    _, _, V = np_params(p)
    X = np.asarray(X, np.float64)
    N, n = X.shape
    k = V.shape[1]
    d_w0 = np.ones(N)
    d_w = X.copy()
    d_V = np.zeros((N, n, k))
    for r_ in range(N):
        x = X[r_]
        for f in range(k):
            s = sum(V[j, f] * x[j] for j in range(n))
            for i in range(n):
                d_V[r_, i, f] = x[i] * s - V[i, f] * x[i] ** 2
    return d_w0, d_w, d_V


def _grad_case(dtype, seed=10, N=12):
    rng = np.random.default_rng(seed)
    p = random_params(seed, dtype=dtype)
    X = rng.uniform(-1, 1, (N, N_FEAT)).astype(dtype)
    r = (0.3 * rng.standard_normal(N)).astype(dtype)
    mask = (rng.uniform(size=N) < 0.7).astype(dtype)
    mask[0] = 1.0
    return p, X, r, mask


def _check_gradients(dtype, rtol, atol):
    p, X, r, mask = _grad_case(dtype)
    d_w0, d_w, d_V = analytic_dyhat(p, X)

    # (i) scalar loss = sum of predictions: gradients are the column sums of dŷ/dθ.
    g = jax.jit(jax.grad(lambda q, X: jnp.sum(predict(q, X))))(p, jnp.asarray(X))
    np.testing.assert_allclose(float(g.w0), d_w0.sum(), rtol=rtol, atol=atol)
    np.testing.assert_allclose(np.asarray(g.w), d_w.sum(0), rtol=rtol, atol=atol)
    np.testing.assert_allclose(np.asarray(g.V), d_V.sum(0), rtol=rtol, atol=atol)

    # (ii) the R² loss: dL/dŷ_r = −2 mask_r (r_r − ŷ_r) / Σ mask r², then the chain rule.
    yhat = naive_predict_rows(p, X)
    m = mask.astype(np.float64)
    rr = r.astype(np.float64)
    dL_dy = -2.0 * m * (rr - yhat) / np.sum(m * rr * rr)
    g = jax.jit(jax.grad(r2_loss))(p, jnp.asarray(X), jnp.asarray(r), jnp.asarray(mask))
    np.testing.assert_allclose(float(g.w0), dL_dy @ d_w0, rtol=rtol, atol=atol)
    np.testing.assert_allclose(np.asarray(g.w), dL_dy @ d_w, rtol=rtol, atol=atol)
    np.testing.assert_allclose(np.asarray(g.V), np.einsum("r,rif->if", dL_dy, d_V), rtol=rtol, atol=atol)


def test_gradients_match_equation_2_float64(x64):
    # float64: autodiff vs the analytic formula agree to rounding; 1e-10 relative (+1e-12 abs
    # for entries that are ~0).
    _check_gradients(np.float64, rtol=1e-10, atol=1e-12)


def test_gradients_match_equation_2_float32():
    # float32 vs a float64 analytic reference: eps ≈ 1.2e-7, sums of ~12 rows and the R²
    # normalisation; 1e-4 relative (+1e-4 abs for entries near zero; gradients here are O(1-100)).
    _check_gradients(np.float32, rtol=1e-4, atol=1e-4)


# ------------------------------------------------------------------ init_params


# init_params draws are shared between tests: every distinct shape costs a compilation.
BIG_N, BIG_K = 200, 50


@pytest.fixture(scope="module")
def big_draw():
    return init_params(jax.random.key(2), BIG_N, BIG_K)


def test_init_params_shapes_dtypes_and_linear_start(big_draw):
    p = big_draw
    assert p.w0.shape == () and p.w.shape == (BIG_N,) and p.V.shape == (BIG_N, BIG_K)
    assert p.w0.dtype == p.w.dtype == p.V.dtype == jnp.float32
    assert p.n_features == BIG_N and p.rank == BIG_K
    np.testing.assert_array_equal(np.asarray(p.w), 0.0)
    assert float(p.w0) == 0.0
    w = np.arange(BIG_N, dtype=np.float32)
    q = init_params(jax.random.key(2), BIG_N, BIG_K, w0=1.5, w=w)
    assert float(q.w0) == 1.5
    np.testing.assert_array_equal(np.asarray(q.w), w)
    np.testing.assert_array_equal(np.asarray(q.V), np.asarray(p.V))  # same key, same V


def test_init_params_float64(x64):
    p = init_params(jax.random.key(1), 5, 2, w=np.ones(5), dtype=jnp.float64)
    assert p.w0.dtype == p.w.dtype == p.V.dtype == jnp.float64
    assert np.asarray(p.V).std() > 0


def test_init_params_v_scale_statistical(big_draw):
    scale = 0.01
    V = np.asarray(big_draw.V, np.float64)
    # 10,000 draws: std(sample std)/σ ≈ 1/sqrt(2·10⁴) ≈ 0.7%, so 5% is > 7 sigma;
    # SE of the mean ≈ σ/100, so |mean| < 0.05 σ is 5 sigma.
    assert abs(V.std() / scale - 1.0) < 0.05
    assert abs(V.mean()) < 0.05 * scale
    # Columns are independent draws: their correlations are O(1/sqrt(200)) ≈ 0.07; < 0.35.
    C = np.corrcoef(V.T)
    assert np.max(np.abs(C[~np.eye(BIG_K, dtype=bool)])) < 0.35
    big = np.asarray(init_params(jax.random.key(2), BIG_N, BIG_K, init_scale=0.5).V)
    np.testing.assert_allclose(big, 50 * V, rtol=1e-6)  # V is init_scale × a fixed draw
    V0 = np.asarray(init_params(jax.random.key(2), BIG_N, BIG_K, init_scale=0.0).V)
    np.testing.assert_array_equal(V0, 0.0)


def test_init_params_rank_prefix_and_key_dependence(big_draw):
    """A rank-k draw is the first k columns of a larger-rank draw (rank sweeps pad V)."""
    small = np.asarray(init_params(jax.random.key(2), BIG_N, 3).V)
    np.testing.assert_array_equal(small, np.asarray(big_draw.V)[:, :3])
    other = np.asarray(init_params(jax.random.key(4), BIG_N, 3).V)
    assert not np.allclose(small, other)


def test_init_params_wrong_w_shape_raises():
    with pytest.raises(ValueError, match=r"w has shape \(199,\), expected \(200,\)"):
        init_params(jax.random.key(0), BIG_N, BIG_K, w=np.zeros(BIG_N - 1))
    with pytest.raises(ValueError, match="expected"):
        init_params(jax.random.key(0), BIG_N, BIG_K, w=np.zeros((BIG_N, 1)))


# ------------------------------------------------------------------ rank mask, jit, vmap


def test_with_rank_mask_zeroes_columns_and_matches_truncated_rank(x64):
    p = random_params(11, k=4)
    mask = jnp.asarray([1.0, 0.0, 1.0, 0.0])
    q = with_rank_mask(p, mask)
    V, Vq = np.asarray(p.V), np.asarray(q.V)
    np.testing.assert_array_equal(Vq[:, [1, 3]], 0.0)
    np.testing.assert_array_equal(Vq[:, [0, 2]], V[:, [0, 2]])
    np.testing.assert_array_equal(np.asarray(q.w), np.asarray(p.w))
    # The masked model is the rank-2 model made of the kept columns.
    kept = FAPMParams(w0=p.w0, w=p.w, V=p.V[:, jnp.asarray([0, 2])])
    X = np.random.default_rng(12).uniform(-1, 1, (10, N_FEAT))
    np.testing.assert_allclose(
        np.asarray(jpredict(q, jnp.asarray(X))), naive_predict_rows(kept, X), atol=1e-12
    )  # float64, 1e-12 abs


def test_predict_jit_and_vmap_over_params():
    ps = [random_params(s, dtype=np.float32) for s in (20, 21, 22)]
    X = jnp.asarray(np.random.default_rng(23).uniform(-1, 1, (9, N_FEAT)), jnp.float32)
    jitted = eqx.filter_jit(predict)
    # jit vs eager float32: same operations, fusion may reorder; 1e-6 abs on O(1) values.
    np.testing.assert_allclose(np.asarray(jitted(ps[0], X)), np.asarray(predict(ps[0], X)), atol=1e-6)
    stacked = jax.tree_util.tree_map(lambda *a: jnp.stack(a), *ps)
    batched = np.asarray(jax.vmap(predict, in_axes=(0, None))(stacked, X))
    assert batched.shape == (3, 9)
    for s, p in enumerate(ps):
        loop = np.asarray(predict(p, X))
        # vmap vs loop float32: 1e-6 abs; both vs the float64 reference: 2e-5 abs.
        np.testing.assert_allclose(batched[s], loop, atol=1e-6)
        np.testing.assert_allclose(batched[s], naive_predict_rows(p, np.asarray(X)), atol=2e-5)


def test_jitted_predict_with_zero_V_is_the_linear_model():
    # Guards against a known XLA:CPU miscompilation (jax/jaxlib 0.10.2) of a reduction over a
    # matrix product with a constant-zero operand: it returned garbage of order 1e30 here.
    # The trainer's linear start is exactly this program. Tolerance: float32 round-off. Compiled
    # at XLA:CPU's default backend optimisation (level 3), where the bug lived, whatever the
    # suite's level (tests/conftest.py).
    rng = np.random.default_rng(0)
    X = jnp.asarray(rng.uniform(-1, 1, (2000, 48)), jnp.float32)
    w = jnp.asarray(rng.normal(size=48), jnp.float32)

    @functools.partial(jax.jit, compiler_options={"xla_backend_optimization_level": 3})
    def f(X, w):
        return predict(FAPMParams(w0=jnp.float32(0.1), w=w, V=jnp.zeros((48, 8), jnp.float32)), X)

    np.testing.assert_allclose(np.asarray(f(X, w)), 0.1 + np.asarray(X) @ np.asarray(w), rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------ self-interaction variant


def test_self_interaction_variant_equals_naive_sum_with_squares(x64):
    """``ŷ = w0 + Σ w_i x_i + Σ_{i<j} <v_i,v_j> x_i x_j + Σ_i d_i x_i²`` with loops; the
    diagonal of ``interaction_matrix`` is ``d``; ``d = 0`` is the paper's model."""
    p = random_params(4)
    rng = np.random.default_rng(5)
    d = rng.normal(size=N_FEAT)
    ps = FAPMParams(w0=p.w0, w=p.w, V=p.V, d=jnp.asarray(d))
    X = rng.uniform(-1, 1, (15, N_FEAT))
    ref = naive_predict_rows(p, X) + np.array([sum(d[i] * x[i] ** 2 for i in range(N_FEAT)) for x in X])
    np.testing.assert_allclose(np.asarray(jpredict(ps, jnp.asarray(X))), ref, rtol=0, atol=1e-12)
    B = np.asarray(interaction_matrix(ps))
    np.testing.assert_allclose(np.diag(B), d, rtol=0, atol=0)
    zero = FAPMParams(w0=p.w0, w=p.w, V=p.V, d=jnp.zeros(N_FEAT))
    np.testing.assert_allclose(
        np.asarray(jpredict(zero, jnp.asarray(X))), naive_predict_rows(p, X), atol=1e-12
    )
    # the gradient with respect to d is Σ_rows x_i² (analytic)
    g = jax.grad(lambda q: jnp.sum(predict(q, jnp.asarray(X))))(ps)
    np.testing.assert_allclose(np.asarray(g.d), (X**2).sum(axis=0), rtol=1e-12)
    q = init_params(jax.random.key(0), N_FEAT, RANK, self_interactions=True, dtype=jnp.float64)
    assert q.d is not None and np.all(np.asarray(q.d) == 0)
    assert init_params(jax.random.key(0), N_FEAT, RANK).d is None


def test_average_models_forecasts_the_members_mean(x64):
    """``average_models``: one FAPM of rank ``M k`` whose forecast and ``B`` are the mean of the
    ``M`` members' (batch axes kept), against the members predicted one by one."""
    rng = np.random.default_rng(7)
    M, W, N = 3, 2, 40
    p = FAPMParams(
        w0=jnp.asarray(rng.normal(size=(M, W))),
        w=jnp.asarray(rng.normal(size=(M, W, N_FEAT))),
        V=jnp.asarray(rng.normal(size=(M, W, N_FEAT, RANK))),
        d=jnp.asarray(rng.normal(size=(M, W, N_FEAT))),
    )
    X = jnp.asarray(rng.normal(size=(N, N_FEAT)))
    avg = average_models(p)
    assert avg.V.shape == (W, N_FEAT, M * RANK) and avg.w.shape == (W, N_FEAT)
    for w in range(W):
        one = jax.tree_util.tree_map(lambda a: a[w], avg)
        members = [jax.tree_util.tree_map(lambda a: a[m, w], p) for m in range(M)]
        want = np.mean([np.asarray(predict(q, X)) for q in members], axis=0)
        np.testing.assert_allclose(np.asarray(predict(one, X)), want, rtol=1e-12, atol=1e-12)
        B = np.mean([np.asarray(interaction_matrix(q)) for q in members], axis=0)
        np.testing.assert_allclose(np.asarray(interaction_matrix(one)), B, rtol=1e-12, atol=1e-12)
