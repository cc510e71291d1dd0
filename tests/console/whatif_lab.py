"""Shared pieces of the what-if cache tests: the engine's inputs over a lab's history and a bit-for-bit
comparison of two replays (``test_whatif_cache.py``, ``test_fitahead.py``)."""

from __future__ import annotations

import numpy as np

from pfepo.console import replaycache, whatif


def inputs(rt, target):
    """(settings, model, endpoints, read) of the policy file ``target`` over ``rt``'s history store."""
    settings, model = whatif._settings(target, rt.cfg)
    endpoints = [e.name for r in rt.cfg.regions for e in r.endpoints]

    def read(a, b):
        return whatif.history_trace(rt, a, b, rt.cfg.predict.step_s)

    return settings, model, endpoints, read


def same(a: replaycache.Series, b: replaycache.Series) -> None:
    """Two replays agree to the bit (times, values, up flags, probabilities, predictions)."""
    assert a.endpoints == b.endpoints
    for name in ("ts", "values", "up", "prob", "predicted"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
