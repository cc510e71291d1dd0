"""Lab side of the etcd cluster: controllers on real OVS bridges, the kill -9 handover benchmark."""
