"""Prediction: vectorised ARIMA forecasts, window features and a gradient-boosting failure classifier.

``pfepo.predict.engine.PredictiveEngine`` is the entry point the daemon, ``evaluate`` and ``predict`` use.
"""
