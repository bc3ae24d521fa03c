"""Panels and where they come from: the stock-month ``Panel``, the rolling windows, a user's
GKX/CRSP/Welch–Goyal files and their preprocessing, the Ken French portfolios, the embedded
simulated panel and GKX's Monte Carlo design. Imports only ``core``."""
