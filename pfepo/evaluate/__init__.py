"""Offline evaluation and training of the predictor: trace replay, alarm metrics, ``pfepo evaluate``'s
harness, dataset building and (re)training, the leave-one-family-out tool and the streaming score.

Nothing here is imported by the daemon's online path (pfepo.predict); this package imports pfepo.predict,
never the other way round.
"""
