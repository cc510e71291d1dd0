"""Signals in (pull side): HTTP health checks and Prometheus scrapes turned into Samples."""
