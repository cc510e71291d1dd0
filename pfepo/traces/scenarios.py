"""Names of the synthetic scenarios (pfepo.traces.generate), apart from it so that ``pfepo``'s argument parser
lists them without importing pandas: every command's start-up pays for what the parser imports."""

from __future__ import annotations

PRECURSOR = ("latency_creep", "loss_ramp", "link_saturation", "cpu_exhaustion")
NO_PRECURSOR = ("sudden_failure", "flapping")
BENIGN = ("benign_daily", "benign_spikes")
SCENARIOS: tuple[str, ...] = PRECURSOR + NO_PRECURSOR + BENIGN
