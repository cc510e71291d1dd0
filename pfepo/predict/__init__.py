"""Online prediction: the anomaly core, the predictive engine (vectorised ARIMA forecasts, window
features, a gradient-boosting classifier and the combination rule), ``Prediction``, root-cause analysis
and the failure learner. The daemon imports only this package; offline evaluation and training live in
pfepo.evaluate.

``pfepo.predict.engine.PredictiveEngine`` is the entry point the daemon and ``pfepo evaluate`` use;
``pfepo.predict.univariate`` runs the same core for ``pfepo predict``.
"""
