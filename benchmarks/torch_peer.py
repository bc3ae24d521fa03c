"""FAPM training in JAX (30 windows, one vmapped program) against the same training written in
PyTorch the way a researcher would: a loop over windows, each on its own rows.

Both sides train the same windows from the same start — the OLS linear part and the ``V``
draw of :func:`fapm_jax.fit_windows` are handed to PyTorch — with the same full-batch
``1 − R²`` loss, Adam (learning rate ``lr``; the linear part's ``lr × linear_lr_scale``), the
same number of epochs and the same best-on-validation rule (the OLS start is the first
candidate). They must agree on each window's best validation R² (float32 round-off); the
steady-state times (second calls; PyTorch on all of this machine's threads) are measured side
by side in one run. PyTorch is an optional extra (``pip install "fapm-jax[torch]"``), not a
dependency of the package.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

from fapm_jax import SimConfig, TrainConfig, WindowSpec, simulate_panel
from fapm_jax.core.config import hyper_from_config
from fapm_jax.core.moments import window_correlations
from fapm_jax.core.rows import finish_windows, init_windows, train_windows
from fapm_jax.data.windows import rolling_windows, window_masks


def torch_fit(X, r, tm, vm, w0, w, V, lin_r2, config: TrainConfig):
    """Per window (a Python loop): the FAPM of ``model.predict`` on the window's training rows,
    full batch, Adam; returns each window's best validation R²."""
    import torch

    Xt, rt = torch.from_numpy(X), torch.from_numpy(r)
    best = []
    for k in range(tm.shape[0]):
        Xtr, rtr = Xt[torch.from_numpy(tm[k])], rt[torch.from_numpy(tm[k])]
        Xva, rva = Xt[torch.from_numpy(vm[k])], rt[torch.from_numpy(vm[k])]
        p0 = torch.tensor(w0[k]).requires_grad_()
        pw = torch.tensor(w[k]).requires_grad_()
        pV = torch.tensor(V[k]).requires_grad_()
        opt = torch.optim.Adam(
            [
                {"params": [p0, pw], "lr": config.learning_rate * config.linear_lr_scale},
                {"params": [pV], "lr": config.learning_rate},
            ],
            eps=1e-8,
        )
        den_tr, den_va = (rtr * rtr).sum(), (rva * rva).sum()

        def predict(Xs):
            z = Xs @ pV
            return p0 + Xs @ pw + 0.5 * ((z * z).sum(1) - (Xs * Xs) @ (pV * pV).sum(1))

        b = float(lin_r2[k])
        for _ in range(config.epochs):
            opt.zero_grad()
            e = rtr - predict(Xtr)
            loss = (e * e).sum() / den_tr
            loss.backward()
            opt.step()
            with torch.no_grad():
                ev = rva - predict(Xva)
                b = max(b, float(1.0 - (ev * ev).sum() / den_va))
        best.append(b)
    return np.array(best)


def run(stocks: int = 100, chars: int = 30, rank: int = 4, epochs: int = 50, windows: int = 30) -> list[dict]:
    import torch

    panel, _ = simulate_panel(SimConfig(n_stocks=stocks, n_chars=chars))
    tm, vm, _ = window_masks(panel.year, rolling_windows(WindowSpec(n_windows=windows)))
    cfg = TrainConfig(rank=rank, epochs=epochs)
    X, r = jax.device_put(panel.X), jax.device_put(panel.r)
    tmj, vmj = jax.device_put(tm), jax.device_put(vm)
    hyper = jax.tree_util.tree_map(lambda a: a[None], hyper_from_config(cfg))

    # Both sides are timed from the same start state (OLS starts and V draws computed once).
    start = init_windows(X, r, tmj, vmj, hyper, window_correlations(panel.X, panel.r, tm), config=cfg)

    e0, e1 = jnp.asarray(0, jnp.int32), jnp.asarray(epochs, jnp.int32)

    def jax_fit():  # the epochs, then the last epoch's evaluation (as fit_windows runs them)
        st, _ = train_windows(start, X, r, tmj, vmj, hyper, e0, e1, config=cfg, n_epochs=epochs, n_batches=1)
        return jax.block_until_ready(finish_windows(st, X, r, tmj, vmj, hyper, config=cfg)[0])

    p = jax.tree_util.tree_map(lambda a: np.asarray(a)[0], start.params)
    args = (panel.X, panel.r, tm, vm, p.w0, p.w, p.V, np.asarray(start.best_valid_r2)[0], cfg)
    times = {"jax": [], "torch": []}
    out = {}
    for _ in range(2):  # interleaved; the second round is the steady state
        for name, fn in (("jax", jax_fit), ("torch", lambda: torch_fit(*args))):
            t0 = time.perf_counter()
            out[name] = fn()
            times[name].append(time.perf_counter() - t0)
    jax_best = np.asarray(out["jax"].best_valid_r2)[0]
    diff = float(np.max(np.abs(jax_best - out["torch"])))
    rows = []
    for name in ("jax", "torch"):
        rows.append(
            dict(
                method={
                    "jax": "JAX, 30 windows vmapped",
                    "torch": f"PyTorch {torch.__version__}, loop over windows",
                }[name],
                rows=panel.n_rows,
                factors=panel.n_features,
                rank=rank,
                windows=windows,
                epochs=epochs,
                first_call_s=times[name][0],
                steady_s=times[name][1],
                threads=torch.get_num_threads(),
                max_best_valid_r2_diff=diff,
            )
        )
    ratio = rows[1]["steady_s"] / rows[0]["steady_s"]
    for row in rows:
        row["torch_over_jax"] = ratio
    return rows


def describe(rows: list[dict]) -> str:
    from fapm_jax.reporting.markdown import md_table

    r0 = rows[0]
    table = md_table(
        ["method", "rows", "factors", "rank", "windows", "epochs", "first call (s)", "steady (s)"],
        [
            [
                r["method"],
                f"{r['rows']:,}",
                r["factors"],
                r["rank"],
                r["windows"],
                r["epochs"],
                f"{r['first_call_s']:.2f}",
                f"{r['steady_s']:.2f}",
            ]
            for r in rows
        ],
    )
    return (
        f"{table}\n\nPyTorch / JAX time (steady state, PyTorch on {r0['threads']} threads): "
        f"**{r0['torch_over_jax']:.2f}x**; largest difference in a window's best validation R²: "
        f"{r0['max_best_valid_r2_diff']:.1e}\n"
    )
