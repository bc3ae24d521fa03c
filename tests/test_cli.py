"""The ``fapm`` command end to end on a tiny simulated panel, and its one-line errors."""

import subprocess
import sys

import numpy as np
import polars as pl
import pytest

from fapm_jax.cli import main

TINY = ["--stocks", "12", "--chars", "6", "--epochs", "3", "--rank", "2", "--windows", "2",
        "--first-test-year", "2010", "--quiet"]


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


def test_reproduce_writes_report(tmp_path):
    assert main(["reproduce", *TINY, "--out", str(tmp_path)]) == 0
    report = (tmp_path / "REPORT.md").read_text()
    assert "Table 1" in report and "0.47" in report  # the paper's FAPM value beside ours
    assert (tmp_path / "figure4_r2_oos.png").stat().st_size > 1000
    assert (tmp_path / "r2_oos_by_year.png").stat().st_size > 1000


@pytest.mark.parametrize(
    "extra, needle",
    [(["--first-year", "1940"], "no rows in 1940-1956"), (["--factors", "mvel1,nosuch"], "unknown factor(s) nosuch")],
)
def test_data_errors_are_one_line_exit_2(extra, needle, tmp_path, capsys):
    assert main(["run", *TINY, "--out", str(tmp_path), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("extra, needle", [(["--rank", "0"], "argument --rank"), (["--data", "crsp"], "argument --data")])
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
    proc = subprocess.run([sys.executable, "-m", "fapm_jax.cli", "run", "--epochs", "-3"],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "--epochs" in proc.stderr
