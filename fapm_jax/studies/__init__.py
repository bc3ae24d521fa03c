"""Studies composed from the layers below: the rolling run (Algorithm 2), sweeps, FAPM-m, the
GKX comparison suite and GKX's simulation study. Return results; write nothing but
checkpoints."""
