"""Telemetry traces in the CSV format of DESIGN.md: reading/validating them and generating synthetic ones."""
