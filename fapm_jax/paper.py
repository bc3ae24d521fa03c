"""The FAPM paper's published numbers (CRSP 1957–2016, 94 characteristics + 8 macro predictors),
printed beside ours in ``REPORT.md``. Values as printed in the paper; percentages where the
paper gives percentages."""

from __future__ import annotations

#: Table 2: the top-7 and bottom-7 factors by OLS importance (percent) and FAPM-m's R²_oos (%)
#: for m = 1 … 7 (the paper ranks once on the full sample).
TABLE2_TOP = (("ntis", 57.18), ("svar", 39.00), ("dp", 1.35), ("bm", 0.87), ("dfy", 0.46), ("ep", 0.48), ("tms", 0.40))
TABLE2_BOTTOM = (("ear", 2.49e-5), ("mom36m", 2.57e-5), ("herf", 4.70e-5), ("salerec", 17.30e-5),
                 ("rd_sale", 20.21e-5), ("std_turn", 20.86e-5), ("operprof", 28.76e-5))
TABLE2_R2 = {1: 0.48, 2: 0.43, 3: 0.43, 4: 0.80, 5: 0.80, 6: 0.88, 7: 1.01}

#: Table 3: FAPM-m R²_oos (%) for m = 1 … 7 with and without the SIC2 dummies.
TABLE3 = {
    "with": {1: 0.51, 2: 0.56, 3: 0.52, 4: 0.72, 5: 0.64, 6: 0.78, 7: 0.87},
    "without": {1: 0.48, 2: 0.42, 3: 0.44, 4: 0.80, 5: 0.80, 6: 0.88, 7: 1.01},
}

#: Table 4: R²-based importance (%) of the 8 macro predictors, normalised within each model.
TABLE4: dict[str, dict[str, float]] = {
    "dp": {"PLS": 12.52, "PCR": 14.12, "ENet+H": 2.49, "GLM+H": 4.54, "RF": 5.80, "GBRT+H": 6.05, "NN1": 15.57,
           "NN2": 17.58, "NN3": 14.84, "NN4": 13.95, "NN5": 13.15, "FAPM": 1.46},
    "ep": {"PLS": 12.25, "PCR": 13.52, "ENet+H": 3.27, "GLM+H": 7.37, "RF": 6.27, "GBRT+H": 2.85, "NN1": 8.86,
           "NN2": 8.09, "NN3": 7.34, "NN4": 6.54, "NN5": 6.47, "FAPM": 1.81},
    "bm": {"PLS": 14.21, "PCR": 14.83, "ENet+H": 33.95, "GLM+H": 43.46, "RF": 10.94, "GBRT+H": 12.49, "NN1": 28.57,
           "NN2": 27.18, "NN3": 27.92, "NN4": 26.95, "NN5": 27.90, "FAPM": 57.20},
    "ntis": {"PLS": 11.25, "PCR": 9.10, "ENet+H": 1.30, "GLM+H": 4.89, "RF": 13.02, "GBRT+H": 13.79, "NN1": 18.37,
             "NN2": 19.26, "NN3": 20.15, "NN4": 19.59, "NN5": 18.68, "FAPM": 0.19},
    "tbl": {"PLS": 14.02, "PCR": 15.29, "ENet+H": 13.29, "GLM+H": 7.90, "RF": 11.98, "GBRT+H": 19.49, "NN1": 17.18,
            "NN2": 16.40, "NN3": 17.76, "NN4": 20.99, "NN5": 21.06, "FAPM": 0.48},
    "tms": {"PLS": 11.35, "PCR": 10.66, "ENet+H": 0.31, "GLM+H": 5.87, "RF": 16.81, "GBRT+H": 15.27, "NN1": 10.79,
            "NN2": 10.59, "NN3": 10.91, "NN4": 10.38, "NN5": 10.33, "FAPM": 2.15},
    "dfy": {"PLS": 17.17, "PCR": 15.68, "ENet+H": 42.13, "GLM+H": 24.10, "RF": 24.37, "GBRT+H": 22.93, "NN1": 0.09,
            "NN2": 0.06, "NN3": 0.06, "NN4": 0.04, "NN5": 0.12, "FAPM": 34.39},
    "svar": {"PLS": 7.22, "PCR": 6.80, "ENet+H": 3.26, "GLM+H": 1.87, "RF": 10.82, "GBRT+H": 7.13, "NN1": 0.57,
             "NN2": 0.83, "NN3": 1.02, "NN4": 1.57, "NN5": 2.29, "FAPM": 2.30},
}

#: Table 5: the largest normalised interactions, macro × macro and those with a characteristic.
TABLE5_MACRO = (("bm", "ntis", 0.37), ("ntis", "dp", 0.13), ("ntis", "ep", 0.11), ("ntis", "dfy", 0.08),
                ("bm", "dp", 0.06), ("bm", "ep", 0.05), ("ntis", "tms", 0.04), ("bm", "dfy", 0.04),
                ("ntis", "tbl", 0.03))
TABLE5_CHAR = (("ntis", "sgr", 0.310), ("ntis", "cash", 0.279), ("ntis", "stdcf", 0.271),
               ("stdacc", "stdcf", 0.032), ("cinvest", "roavol", 0.025), ("divi", "stdcf", 0.024),
               ("chtx", "rsup", 0.022), ("securedind", "roavol", 0.019), ("divi", "cinvest", 0.018))

#: Table 6: the top-20 average interactions per factor (shares summing to one with "others").
TABLE6 = (("ntis", 0.066), ("bm", 0.032), ("dp", 0.011), ("ep", 0.009), ("dfy", 0.008), ("securedind", 0.004),
          ("tms", 0.003), ("stdcf", 0.003), ("cash", 0.003), ("tbl", 0.002), ("roeq", 0.0026),
          ("roaq", 0.0025), ("stdacc", 0.002), ("roavol", 0.0021), ("cinvest", 0.0021), ("aeavol", 0.0021),
          ("rsup", 0.0021), ("nincr", 0.0020), ("ear", 0.0019), ("chtx", 0.0018))

#: Figure 10: the 12 characteristics with the largest first-order FAPM weight, largest first.
FIGURE10 = ("mom1m", "indmom", "maxret", "retvol", "realestate", "roavol", "mvel1", "agr", "rsup", "turn",
            "mom12m", "baspread")
