"""PF-EPO: Predictive Failover & Endpoint Policy Orchestrator."""

__version__ = "0.1.0"
