"""The ``fapm`` command end to end on a tiny simulated panel, and its one-line errors."""

import subprocess
import sys

import numpy as np
import polars as pl
import pytest

from fapm_jax.cli import main

TINY = [
    "--stocks",
    "12",
    "--n-chars",
    "6",
    "--epochs",
    "3",
    "--rank",
    "2",
    "--windows",
    "2",
    "--first-test-year",
    "2010",
    "--quiet",
]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    assert main(["run", *TINY, "--out", str(out)]) == 0
    return out


def test_run_writes_its_files(run_dir):
    pred = pl.read_parquet(run_dir / "predictions.parquet")
    assert pred.columns == ["permno", "month", "r", "r_hat"]
    assert sorted(set((pred["month"] // 100).to_list())) == [2010, 2011]
    assert pred.height == 12 * 24
    r2 = pl.read_csv(run_dir / "r2_oos.csv")
    assert {"all", "top-4", "bottom-4", "mean-of-years", "year"} <= set(r2["sample"].to_list())
    r = pred["r"].to_numpy().astype(np.float64)
    e = r - pred["r_hat"].to_numpy()
    assert r2.filter(pl.col("sample") == "all")["r2_oos"][0] == pytest.approx(1 - (e @ e) / (r @ r), abs=1e-6)
    params = np.load(run_dir / "params.npz")
    assert params["V"].shape == (2, 14, 2) and list(params["test_year"]) == [2010, 2011]
    assert "R²_oos" in (run_dir / "summary.md").read_text()
    assert pl.read_csv(run_dir / "training.csv").height == 2
    assert not list(run_dir.glob(".*.tmp"))  # atomic writes leave no temporaries


def test_same_seed_same_result(run_dir, tmp_path):
    assert main(["run", *TINY, "--out", str(tmp_path)]) == 0
    a = pl.read_parquet(run_dir / "predictions.parquet")
    b = pl.read_parquet(tmp_path / "predictions.parquet")
    assert a.equals(b)


def test_reproduce_writes_table1_figure4_and_dm(tmp_path, monkeypatch):
    import fapm_jax.cli.reproduce as rep

    seen, real_gibbs = {}, rep.run_gibbs

    def run_gibbs(panel, spec, config, **kw):  # what the sampler is handed
        seen["start"], seen["config"] = kw["start"], config
        return real_gibbs(panel, spec, config, **kw)

    monkeypatch.setattr(rep, "run_gibbs", run_gibbs)
    models = "OLS+H,OLS-3+H,PLS,GBRT+H"
    assert (
        main(
            [
                "reproduce",
                *TINY,
                "--models",
                models,
                "--fapm-m",
                "2",
                "--no-sic2",
                "--estimators",
                "map,bayes",
                "--out",
                str(tmp_path),
            ]
        )
        == 0
    )
    # FAPM-MAP at rank 2, the sampler at BAYES_CONFIG's rank 4: the chains start at the prior
    assert seen["start"] == "prior" and seen["config"].n_chains == 1
    report = (tmp_path / "REPORT.md").read_text()
    assert "Table 1" in report and "Diebold–Mariano" in report and "Figure 4" in report
    post = pl.read_csv(tmp_path / "posterior_interactions.csv")  # Bayesian FAPM's credible intervals
    assert post.height > 0 and (post["ci_low"] <= post["ci_high"]).all()
    assert "## Tables 5–6 with credible bands: Bayesian FAPM" in report
    bands = pl.read_csv(tmp_path / "posterior_interactions_bands.csv")
    assert bands.height == 14 * 13 // 2 and (bands["ci_low"] <= bands["ci_high"]).all()
    assert pl.read_csv(tmp_path / "posterior_average_interaction.csv").height == 14
    assert (tmp_path / "posterior_heatmap.png").stat().st_size > 1000
    fc = np.load(tmp_path / "fapm_bayes_forecasts.npz")
    bayes = pl.read_parquet(tmp_path / "predictions_all.parquet")["FAPM-Bayes"].to_numpy()
    np.testing.assert_allclose(fc["r_hat"], bayes, rtol=1e-6)
    assert "| OLS+H | " in report and "-3.46" in report  # GKX's OLS+H beside ours
    assert "0.47" in report  # the paper's FAPM value
    t1 = pl.read_csv(tmp_path / "table1.csv")
    want = ["OLS+H", "OLS-3+H", "PLS", "GBRT+H", "FAPM", "FAPM-MAP", "FAPM-Bayes", "FAPM-best", "FAPM-2"]
    assert t1["model"].to_list() == want  # a row per estimator, and their per-window choice
    # every model's R² in the table is recomputed from the written forecasts
    pred = pl.read_parquet(tmp_path / "predictions_all.parquet")
    r = pred["r"].to_numpy().astype(np.float64)
    for m in t1["model"]:
        e = r - pred[m].to_numpy()
        assert t1.filter(pl.col("model") == m)["all"][0] == pytest.approx(1 - (e @ e) / (r @ r), abs=1e-6)
    fapm = pl.read_parquet(tmp_path / "predictions.parquet")
    np.testing.assert_array_equal(fapm["r_hat"].to_numpy(), pred["FAPM"].to_numpy())
    dm = pl.read_csv(tmp_path / "diebold_mariano.csv")
    assert dm["model"].to_list() == t1["model"].to_list()
    assert (tmp_path / "figure4_r2_oos.png").stat().st_size > 1000
    assert (tmp_path / "r2_oos_by_year.png").stat().st_size > 1000
    # the analyses of sections 3.2-3.3: Tables 2-6, Figures 5-14
    assert "Not run (--no-sic2)" in report  # the SIC2 sweep is exercised on the user GKX files below
    for heading in (
        "Table 2 and Figure 5",
        "Table 3 and Figure 6",
        "Figures 7–9",
        "Figure 10",
        "Table 4 and Figure 11",
        "Table 5, Figures 12–13",
        "Table 6 and Figure 14",
        "Recovered versus true interactions",
    ):
        assert f"## {heading}" in report, heading
    for png in (
        "figure5_fapm_m",
        "figure7_r2_is_by_window",
        "figure9_r2_is_minus_all",
        "figure10_importance",
        "figure11_macro_importance",
        "figure12_macro_interactions",
        "figure13_char_interactions",
        "figure14_average_interaction",
        "interaction_heatmap",
        "interaction_stability",
    ):
        assert (tmp_path / f"{png}.png").stat().st_size > 1000, png
    fm = pl.read_csv(tmp_path / "fapm_m.csv")
    assert fm["m"].to_list() == ["1", "2", "3", "4", "5", "6", "all"]  # 14 factors: m < 7
    e = r - pred["FAPM-2"].to_numpy()  # Table 1's FAPM-2 row is the sweep's m = 2
    assert fm.filter(pl.col("m") == "2")["r2_oos"][0] == pytest.approx(1 - (e @ e) / (r @ r), abs=1e-5)
    t4 = pl.read_csv(tmp_path / "table4_macro_importance.csv")
    assert t4.columns == ["factor", "OLS+H", "OLS-3+H", "PLS", "GBRT+H", "FAPM"] and t4.height == 8
    for m in ("PLS", "GBRT+H", "FAPM"):
        assert t4[m].sum() == pytest.approx(1.0, abs=1e-6) or t4[m].sum() == 0.0
    assert t4["OLS-3+H"].sum() == 0.0  # OLS-3 uses no macro predictor
    # section 4: the 30 portfolios (Tables 7-8), deciles (Table 9), investor analytics
    for heading in ("Table 7 and Figure 16", "Table 8 and Figure 17", "Table 9: machine-learning portfolios"):
        assert f"## {heading}" in report, heading
    t7 = pl.read_csv(tmp_path / "table7_portfolio_r2.csv")
    assert t7["portfolio"].to_list()[:6] == ["S&P500", "SMB", "HML", "RMW", "CMA", "UMD"]
    assert set(t7.columns) >= {"FAPM", "FAPM-2", "PLS", "months"}
    t9 = pl.read_csv(tmp_path / "table9_deciles.csv")
    assert t9.height == 11 * len(want) and (tmp_path / "hl_cumulative_log_returns.png").stat().st_size > 1000
    inter = pl.read_csv(tmp_path / "interactions.csv")
    assert inter.height == 14 * 13 // 2 and inter["share"].sum() == pytest.approx(1.0, abs=1e-6)


def test_simulate_writes_table_a1(tmp_path):
    args = [
        "simulate",
        "--reps",
        "1",
        "--designs",
        "a50,b50",
        "--models",
        "OLS,OLS+H",
        "--epochs",
        "3",
        "--map-epochs",
        "3",
        "--quiet",
        "--out",
        str(tmp_path),
    ]
    assert main(args) == 0
    tab = pl.read_csv(tmp_path / "table_a1.csv")
    assert tab["method"].to_list() == ["Oracle", "OLS", "OLS+H", "FAPM", "FAPM+SI", "FAPM-MAP"]
    assert tab.filter(pl.col("method") == "OLS")["a_pc50_oos_paper"][0] == pytest.approx(1.14)
    res = pl.read_csv(tmp_path / "results.csv")
    assert res.height == 2 * 1 * 6  # designs x repetitions x methods
    assert "ours / paper" in (tmp_path / "REPORT.md").read_text()
    assert main([*args[:-2], "--designs", "c50", "--out", str(tmp_path / "x")]) == 2


@pytest.mark.parametrize(
    "extra, needle",
    [
        (["--first-year", "1940"], "no rows in 1940-1956"),
        (["--factors", "mvel1,nosuch"], "unknown factor(s) nosuch"),
    ],
)
def test_data_errors_are_one_line_exit_2(extra, needle, tmp_path, capsys):
    assert main(["run", *TINY, "--out", str(tmp_path), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1


@pytest.mark.parametrize(
    "extra, needle", [(["--rank", "0"], "argument --rank"), (["--data", "crsp"], "argument --data")]
)
def test_option_errors_are_one_line_exit_2(extra, needle, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["run", *TINY, "--out", str(tmp_path), *extra])
    err = capsys.readouterr().err.strip()
    assert exc.value.code == 2
    assert needle in err and len(err.splitlines()) == 1


def test_out_is_a_file(tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    assert main(["run", *TINY, "--out", str(f)]) == 2
    assert "is not a folder" in capsys.readouterr().err


def test_console_error_has_no_traceback():
    proc = subprocess.run(
        [sys.executable, "-m", "fapm_jax.cli", "run", "--epochs", "-3"], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "--epochs" in proc.stderr


def test_run_on_the_french_panel(tmp_path):
    args = [
        "--data",
        "french",
        "--epochs",
        "2",
        "--rank",
        "2",
        "--windows",
        "2",
        "--first-test-year",
        "2010",
        "--quiet",
        "--out",
        str(tmp_path),
    ]
    assert main(["run", *args]) == 0
    pred = pl.read_parquet(tmp_path / "predictions.parquet")
    assert pred.height == 30 * 24 and set(pred["permno"].to_list()) == set(range(1, 31))
    r2 = pl.read_csv(tmp_path / "r2_oos.csv")
    assert {"top-6", "bottom-6"} <= set(r2["sample"].to_list())  # the S5 / S1 portfolios
    # --level train-mean: fit to the months' deviations, the level from the training mean
    assert main(["run", *args[:-1], str(tmp_path / "level"), "--level", "train-mean"]) == 0
    summary = (tmp_path / "level" / "summary.md").read_text()
    assert "level=train-mean" in summary and "valid R² of r, level added (%)" in summary
    t = pl.read_csv(tmp_path / "level" / "training.csv")
    assert t.height == 2 and t["valid_r2"].is_finite().all()
    with pytest.raises(SystemExit) as e:
        main(["run", *args, "--level", "market"])
    assert e.value.code == 2


def test_gkx_needs_its_files(tmp_path, capsys):
    assert main(["run", "--data", "gkx", "--quiet", "--out", str(tmp_path)]) == 2
    assert "--data gkx needs --chars and --returns PATH" in capsys.readouterr().err
    assert (
        main(
            [
                "run",
                "--data",
                "gkx",
                "--chars",
                str(tmp_path / "no.csv"),
                "--returns",
                str(tmp_path / "no.csv"),
                "--quiet",
                "--out",
                str(tmp_path),
            ]
        )
        == 2
    )
    assert "no such file" in capsys.readouterr().err


def _write_gkx_files(folder, n_stocks=25, first_year=2000, last_year=2012, seed=0):
    """Tiny files in the exact formats: datashare.csv (DATE first) and a CRSP CSV with
    upper-case names, a letter code in RET and exchange codes (NYSE = every third stock)."""
    rng = np.random.default_rng(seed)
    months = [y * 100 + m for y in range(first_year, last_year + 1) for m in range(1, 13)]
    month_end = {m: m * 100 + 28 for m in months}
    chars = ["mvel1", "bm", "mom12m", "mom1m"]
    lines_c = ["DATE,permno," + ",".join(chars) + ",sic2"]
    lines_r = ["PERMNO,date,RET,PRC,SHROUT,EXCHCD"]
    for m in months:
        for p in range(10001, 10001 + n_stocks):
            vals = [f"{rng.lognormal(5, 1):.3f}"] + [
                "" if rng.random() < 0.1 else f"{rng.normal():.4f}" for _ in chars[1:]
            ]
            lines_c.append(f"{month_end[m]},{p}," + ",".join(vals) + f",{p % 7 + 10}")
            ret = "C" if rng.random() < 0.01 else f"{rng.normal(0.01, 0.1):.5f}"
            lines_r.append(
                f"{p},{month_end[m]},{ret},{-rng.uniform(5, 50):.2f},{rng.integers(1000, 9000)},{p % 3 + 1}"
            )
    (folder / "datashare.csv").write_text("\n".join(lines_c) + "\n")
    (folder / "crsp.csv").write_text("\n".join(lines_r) + "\n")
    return folder / "datashare.csv", folder / "crsp.csv"


def test_run_on_user_gkx_files(tmp_path):
    chars, rets = _write_gkx_files(tmp_path)
    out = tmp_path / "out"
    args = [
        "--data",
        "gkx",
        "--chars",
        str(chars),
        "--returns",
        str(rets),
        "--use-chars",
        "mvel1,bm,mom12m,mom1m",
        "--sic2",
        "--first-year",
        "2000",
        "--valid-years",
        "3",
        "--first-test-year",
        "2010",
        "--windows",
        "2",
        "--epochs",
        "2",
        "--rank",
        "2",
        "--cache",
        str(tmp_path / "cache"),
        "--quiet",
        "--out",
        str(out),
    ]
    # the file has 4 of the 94 characteristics: without naming them, an error (issue 18)
    i = args.index("--use-chars")
    bare = args[:i] + args[i + 2 :]
    assert main(["run", *bare[:-1], str(tmp_path / "bare")]) == 2
    assert not (tmp_path / "bare").exists()
    assert main(["run", *args]) == 0
    summary = (out / "summary.md").read_text()
    assert "characteristics: 4 of the 94 (mvel1, mom1m, mom12m, bm)" in summary
    pred = pl.read_parquet(out / "predictions.parquet")
    assert sorted(set((pred["month"] // 100).to_list())) == [2010, 2011]
    params = np.load(out / "params.npz")
    names = list(params["feature_names"])
    assert names[:4] == ["mvel1", "mom1m", "mom12m", "bm"] and "bm_macro" in names  # GKX header order
    assert any(n.startswith("sic2_") for n in names)
    assert list((tmp_path / "cache").iterdir())  # the preprocessed panel was cached
    # reproduce on the same user files without the suite (FAPM's analyses; the suite is tested
    # above) and with equal-weighted deciles: FAPM-m ranks the factors without the SIC2 dummies,
    # and the SIC2 sweep adds them back (Table 3)
    rep = tmp_path / "rep"
    assert main(["reproduce", *args[:-1], str(rep), "--no-suite", "--decile-weighting", "equal"]) == 0
    report = (rep / "REPORT.md").read_text()
    assert "0.47" in report and "equal-weighted deciles" in report  # the paper's FAPM value beside ours
    assert not (rep / "table1.csv").exists()  # no suite, no Table 1
    assert pl.read_csv(rep / "table9_deciles.csv")["model"].unique().to_list() == ["FAPM"]
    assert "## Table 3 and Figure 6" in report and "## Table 5, Figures 12–13" in report
    assert not any(f.startswith("sic2_") for f in pl.read_csv(rep / "table2.csv")["factor"])
    assert pl.read_csv(rep / "table3.csv")["m"].to_list() == [
        1,
        3,
        5,
    ]  # quick profile's SIC2 m values (< 7 here)
    assert (rep / "figure6_sic2.png").stat().st_size > 1000 and (
        rep / "figure8_r2_is_by_window_sic2.png"
    ).exists()
    assert pl.read_csv(rep / "table4_macro_importance.csv").columns == ["factor", "FAPM"]
    assert "breakpoints among NYSE stocks (CRSP EXCHCD = 1 at t" in report  # the returns' EXCHCD


def test_bad_user_file_is_one_line(tmp_path, capsys):
    chars, rets = _write_gkx_files(tmp_path, n_stocks=12, first_year=2005, last_year=2007)
    text = chars.read_text().splitlines()
    cells = text[5].split(",")  # data row 5: DATE, permno, mvel1, bm, ...
    cells[3] = "abc"  # a non-numeric value of bm
    text[5] = ",".join(cells)
    chars.write_text("\n".join(text) + "\n")
    out = tmp_path / "out"
    assert (
        main(
            [
                "run",
                "--data",
                "gkx",
                "--chars",
                str(chars),
                "--returns",
                str(rets),
                "--cache",
                "none",
                "--quiet",
                "--out",
                str(out),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "datashare.csv" in err and "column 'bm'" in err and "row 5" in err
    assert not out.exists()  # nothing written


def test_reproduce_starts_the_gibbs_chains_at_its_map_fits(tmp_path, monkeypatch):
    """``fapm reproduce --estimators map,bayes``: the FAPM-Bayes chains start at the very
    per-window fits of the FAPM-MAP row where its rank is the sampler's (``BAYES_CONFIG``, 4),
    with ``--members M`` one chain per member at that member's fit (``member_params``; for one
    model it is the chosen fit, tests/test_estimators.py). At another rank they start at the
    prior, one chain: test_reproduce_writes_table1_figure4_and_dm. What is tested is what the
    sampler is handed, so the run stops there (the sampler's run and the report after it are
    the test above)."""
    import fapm_jax.cli.reproduce as rep
    from fapm_jax.studies.rolling import member_params

    class Handed(Exception):
        pass

    seen = {}
    real_est = rep.run_estimator

    def run_estimator(*a, **kw):
        seen["map"] = real_est(*a, **kw)
        return seen["map"]

    def run_gibbs(panel, spec, config, **kw):
        seen["start"], seen["config"] = kw["start"], config
        raise Handed

    monkeypatch.setattr(rep, "run_estimator", run_estimator)
    monkeypatch.setattr(rep, "run_gibbs", run_gibbs)
    tiny = [a if b != "--rank" else "4" for a, b in zip(TINY, ["", *TINY[:-1]])]
    args = ["reproduce", *tiny, "--models", "OLS+H", "--no-sic2", "--estimators", "map,bayes"]
    with pytest.raises(Handed):
        main([*args, "--members", "2", "--out", str(tmp_path)])
    assert seen["start"].V.shape[1:] == (2, seen["map"].params.V.shape[1], 4)
    assert seen["config"].n_chains == 2
    want = member_params(seen["map"])
    for f in ("w0", "w", "V", "d"):
        np.testing.assert_array_equal(getattr(seen["start"], f), getattr(want, f))


def test_run_members_averages_the_single_seed_runs(tmp_path):
    """``fapm run --estimator map --members 2`` forecasts the mean of the runs at ``--seed 0``
    and ``--seed 1`` (the ensemble trained 17 settings at a time, ``--settings-batch``: the
    same models up to float32 rounding, atol 5e-6, where the seeds differ by more than 1e-3)."""
    hats = []
    ens = ["--members", "2", "--settings-batch", "17"]
    for name, extra in (("ens", ens), ("s0", ["--seed", "0"]), ("s1", ["--seed", "1"])):
        out = tmp_path / name
        assert main(["run", *TINY, "--estimator", "map", *extra, "--out", str(out)]) == 0
        hats.append(pl.read_parquet(out / "predictions.parquet")["r_hat"].to_numpy().astype(np.float64))
    assert np.abs(hats[1] - hats[2]).max() > 1e-3
    np.testing.assert_allclose(hats[0], (hats[1] + hats[2]) / 2, rtol=1e-4, atol=5e-6)
    with pytest.raises(SystemExit) as exc:
        main(["run", *TINY, "--members", "0", "--out", str(tmp_path / "bad")])
    assert exc.value.code == 2 and not (tmp_path / "bad").exists()
