"""Telemetry traces in the trace CSV format (docs/prediction.md, "Trace CSV format"): reading/validating them and generating synthetic ones."""
