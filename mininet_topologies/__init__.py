"""Mininet topologies and the host-side programs (HTTP service, load client) they run."""
