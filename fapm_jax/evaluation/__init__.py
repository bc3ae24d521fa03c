"""Scores of fitted models: R²_oos (pooled, per year, by size), importance, interactions,
Diebold–Mariano tests, Newey–West HAC, portfolios and deciles. Imports ``core`` and ``data``."""
