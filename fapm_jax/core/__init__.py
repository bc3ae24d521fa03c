"""The model and its trainers (layer 1 of core → data → evaluation → baselines → studies →
reporting → cli): FAPM's parameters and prediction (Equation (1)), the R² loss, OLS starts,
penalties, one epoch engine shared by the row, moment and sharded trainers, and ``fit_windows``.
Imports nothing else of the package."""
