"""OpenFlow side: pure desired-state building (desired.py, reconcile.py) and the os-ken adapter (app.py)."""
