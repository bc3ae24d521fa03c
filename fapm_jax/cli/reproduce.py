"""``fapm reproduce``: the paper pipeline on one panel — FAPM over the rolling windows, the GKX
comparison suite (Table 1, Figure 4, Diebold–Mariano), FAPM-m with and without SIC2 (Tables
2–3, Figures 5–9), importance and interactions (Tables 4–6, Figures 10–14) and the portfolios
(Tables 7–9, Figures 16–17) — written as ``REPORT.md`` with its tables and figures."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import polars as pl

from ..core.errors import ConfigError
from ..data.french import OLS3_COLUMNS, french_factors
from ..data.windows import rolling_windows, window_masks
from ..evaluation.portfolios import PortfolioSpec
from ..reporting import suite_sections as suite
from ..reporting.fapm_m_sections import default_ms, fapm_m_sections
from ..reporting.importance_sections import importance_sections
from ..reporting.interaction_sections import interaction_sections
from ..reporting.markdown import Section
from ..reporting.portfolio_sections import FRENCH_FACTOR_NOTE, portfolio_sections
from ..reporting.run_sections import (
    fapm_table1_section,
    oracle_r2,
    setup_section,
    training_per_window_section,
    yearly_section,
)
from ..studies.comparison import Comparison, make_model, run_comparison
from ..studies.estimators import BAYES_CONFIG, best_per_window, make_estimator, run_estimator, run_gibbs
from ..studies.fapm_m import FAPMmSweep, fapm_m_sweep
from ..studies.rolling import member_params
from .common import available, log
from .output import write_report
from .progress import Stages
from .run import execute


def comparison(args, run, panel, spec, train, msweep: FAPMmSweep, stages: Stages | None = None):
    """The GKX comparison suite on FAPM's windows, with the test forecasts of FAPM (the run's
    estimator), of the estimators of ``--estimators``, of their per-window choice (FAPM-best)
    and of FAPM-m added; and the models left out (library not installed)."""
    ols3 = args.ols3
    if ols3 is None and args.data == "french":
        ols3 = OLS3_COLUMNS
    names, missing = available(args.models, args)
    models = [make_model(nm, panel.feature_names, profile=args.profile, ols3=ols3) for nm in names]

    def progress(name, sec, reused):
        label = f"{name} {sec:.1f} s{' (saved forecasts reused)' if reused else ''}"
        stages.done(label) if stages is not None else log(args, "  " + label)

    log(
        args,
        f"fapm: comparison suite, {len(models)} models, profile {args.profile}, inputs {args.covariates}",
    )
    comp = run_comparison(
        panel,
        models,
        spec,
        seed=args.seed,
        covariates=args.covariates,
        size_group=run.size_group,
        checkpoint_dir=Path(args.out) / ".suite",
        progress=progress,
        importance=True,
    )
    if not np.array_equal(comp.test_rows, run.test_rows):
        raise ConfigError("internal: the comparison suite and FAPM forecast different test rows")
    # the main run (``--estimator``, the paper's recipe by default) is the "FAPM" row that the
    # paper's tables, the importance and the portfolios refer to
    comp = comp.with_forecast("FAPM", run.predictions["r_hat"].to_numpy())
    comp.seconds["FAPM"] = run.seconds["total"]
    runs = {args.estimator: run}
    gibbs = None
    for kind in [e for e in args.estimators if e not in ("none", args.estimator)]:
        log(args, f"fapm: FAPM estimator {kind}")
        if kind == "bayes":  # Bayesian FAPM: the posterior mean of every window's Gibbs draws
            # the chains start at each window's FAPM-MAP fit where this run has one at the
            # sampler's rank (+0.05 points of R²_oos on the embedded default, docs/training.md)
            # (--members M: M chains per window, chain m at member m's fit)
            fits = runs.get("map")
            start, cfg = "prior", BAYES_CONFIG
            if fits is not None and fits.params.V.shape[-1] == BAYES_CONFIG.rank:
                start = member_params(fits)
                cfg = dataclasses.replace(BAYES_CONFIG, n_chains=start.w0.shape[1])
                log(args, f"  FAPM-Bayes: {cfg.n_chains} chain(s) per window, at the FAPM-MAP fit(s)")
            gibbs = run_gibbs(
                panel, spec, cfg, level=train.level, use_validation=not args.bayes_train_only, start=start
            )
            if not np.array_equal(gibbs.test_rows, run.test_rows):
                raise ConfigError("internal: the Gibbs sampler and FAPM forecast different test rows")
            comp = comp.with_forecast("FAPM-Bayes", gibbs.r_hat)
            comp.seconds["FAPM-Bayes"] = gibbs.seconds
            if stages is not None:
                stages.done(f"FAPM-Bayes {gibbs.seconds:.1f} s")
            continue
        est = make_estimator(
            dataclasses.replace(train, estimator=kind),
            panel,
            spec,
            epochs=args.epochs,
            select=args.select,
            members=args.members,
        )
        runs[kind] = run_estimator(panel, est, spec, size_group=run.size_group)
        comp = comp.with_forecast(est.name, runs[kind].predictions["r_hat"].to_numpy())
        comp.seconds[est.name] = runs[kind].seconds["total"]
        label = f"{est.name} {runs[kind].seconds['total']:.1f} s, R²_oos {100 * runs[kind].r2_value():.3f}%"
        stages.done(label) if stages is not None else log(args, "  " + label)
    select = list(runs.values())
    if len(select) > 1:  # the per-window choice among the estimators, on validation R²
        # (an ensemble's is its average forecast's: RollingRun.valid_r2)
        r_hat, _ = best_per_window(select, panel)
        comp = comp.with_forecast("FAPM-best", r_hat)
        comp.seconds["FAPM-best"] = sum(r.seconds["total"] for r in select)
    m = args.fapm_m
    if m in msweep.ms:
        comp = comp.with_forecast(f"FAPM-{m}", msweep.test_forecasts(m, panel, spec)[run.test_rows])
        comp.seconds[f"FAPM-{m}"] = msweep.seconds
    return comp, missing, gibbs


def suite_report(args, run, panel, spec, train, oracle, msweep, stages: Stages | None = None):
    """Table 1, Figure 4 and the Diebold–Mariano tests, and the comparison they come from."""
    t0 = time.perf_counter()
    comp, missing, gibbs = comparison(args, run, panel, spec, train, msweep, stages)
    log(args, f"fapm: comparison suite done in {time.perf_counter() - t0:.0f} s")
    notes = [
        suite.size_note(args.data, run.size_group),
        suite.fapm_m_note(msweep, args.fapm_m),
        suite.profile_note(args.profile, args.covariates),
    ]
    notes += [n for n in [suite.members_note(args.members, args.estimator)] if n]
    sections = suite.suite_sections(
        comp,
        panel_name=panel.name,
        size_group=run.size_group,
        oracle=oracle,
        fapm_m=args.fapm_m,
        notes=notes,
        missing=missing,
    )
    return sections, comp, gibbs


def sic2_sweep(args, base, train, spec, ms) -> tuple[FAPMmSweep | None, str]:
    """FAPM-m with the SIC2 dummies in every subset (Table 3), or why it is not run."""
    if base.sic2 is None:
        return None, "Not run: this panel has no SIC2 codes."
    if args.no_sic2:
        return None, "Not run (--no-sic2)."
    with_sic2 = base.with_sic2_dummies()
    dummies = [f for f in with_sic2.feature_names if f.startswith("sic2_")]
    sic2_ms = tuple(m for m in ((1, 3, 5, 7) if args.profile == "quick" else range(1, 8)) if m in ms)
    log(args, f"fapm: FAPM-m with {len(dummies)} SIC2 dummies, m = {', '.join(map(str, sic2_ms))}")
    sweep = fapm_m_sweep(with_sic2, train, spec, sic2_ms, always=dummies)
    log(args, f"  {sweep.seconds:.1f} s")
    return sweep, "Quick profile: m = 1, 3, 5, 7 (full profile: 1–7). " if args.profile == "quick" else ""


def portfolio_report(args, run, panel, comp: Comparison | None) -> list[Section]:
    """Tables 7–9 of every model's test forecasts (FAPM's alone without the suite)."""
    if comp is not None:
        frame, models = comp.frame, list(comp.models)
    else:
        frame = run.predictions.select("permno", "month", "r", "mktcap", pl.col("r_hat").alias("FAPM"))
        models = ["FAPM"]
    factors, note, spec = None, "", PortfolioSpec()
    if args.data == "french":
        factors = french_factors().select(
            "month", pl.col("MktRF").alias("MKT"), "SMB", "HML", pl.col("Mom").alias("UMD")
        )
        note, spec = FRENCH_FACTOR_NOTE, PortfolioSpec(value="value_bucket", sp500=30)
    name = f"FAPM-{args.fapm_m}"
    return portfolio_sections(
        frame,
        panel,
        run.test_rows,
        models,
        factors=factors,
        factor_note=note,
        fapm_m=name if name in models else None,
        spec=spec,
        weighting=args.decile_weighting,
    )


def cmd_reproduce(args) -> int:
    run, panel, truth, train, spec = execute(args)
    out = Path(args.out)
    oracle = oracle_r2(run, truth) if truth is not None else None
    years = [w.test for w in run.windows]
    train_m, _, _ = window_masks(panel.year, rolling_windows(spec))
    # FAPM-m on the factors without SIC2 dummies (moment trainer: seconds), before Table 1 uses it
    base = panel.select_features([f for f in panel.feature_names if not f.startswith("sic2_")])
    ms = default_ms(base.n_features, args.fapm_m_max)
    extra = [e for e in args.estimators if e not in ("none", args.estimator)]
    n_suite = 0 if args.no_suite else len(args.models) + len(extra)
    stages = Stages(args, 2 + n_suite + 3, "reproduce")
    stages.done(f"FAPM {run.seconds['total']:.1f} s")
    stages.note(f"fapm: FAPM-m sweep, m = 1..{ms[-2] if len(ms) > 1 else '-'} and all factors")
    msweep = fapm_m_sweep(base, train, spec, ms)
    stages.done(f"FAPM-m sweep {msweep.seconds:.1f} s")
    sections = [setup_section(run, panel, train)]
    comp = gibbs = None
    if args.no_suite:
        sections.append(fapm_table1_section(run, oracle, suite.size_note(args.data, run.size_group)))
    else:
        suite_secs, comp, gibbs = suite_report(args, run, panel, spec, train, oracle, msweep, stages)
        sections += suite_secs
    sic2, sic2_note = sic2_sweep(args, base, train, spec, ms)
    stages.done("FAPM-m with SIC2 dummies" if sic2 is not None else "FAPM-m with SIC2 dummies: not run")
    sections += fapm_m_sections(msweep, years, sic2=sic2, sic2_note=sic2_note)
    t1 = time.perf_counter()
    sections += importance_sections(run, panel, train_m, comp.importance if comp is not None else None, truth)
    sections += interaction_sections(run, panel, truth, gibbs=gibbs)
    stages.done(f"importance and interactions {time.perf_counter() - t1:.1f} s")
    t1 = time.perf_counter()
    sections += portfolio_report(args, run, panel, comp)
    stages.done(f"portfolios (Tables 7-9) {time.perf_counter() - t1:.1f} s")
    stages.close()
    sections += [yearly_section(run, panel.name), training_per_window_section(run)]
    write_report(out / "REPORT.md", f"FAPM reproduction — {panel.name} data", sections)
    log(args, f"fapm: R²_oos {100 * run.r2_value('all'):.3f}%; wrote {out}/REPORT.md")
    return 0
