"""Measurements as Samples (pure): counters to named rates, link probes, poll backpressure."""
