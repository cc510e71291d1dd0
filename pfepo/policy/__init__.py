"""Endpoint policies: the YAML language (model), loading with located errors (loader), evaluation
(engine) and hot reload (reload). See docs/policies.md."""
