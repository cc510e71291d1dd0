"""Multi-controller coordination on etcd (issue 15): membership, switch ownership, policy revisions, claims.

Pure parts (ownership.py, claims.py) decide; etcd.py is the only module that talks to etcd. With no
``cluster:`` section in the config nothing here is imported by the daemon.
"""
