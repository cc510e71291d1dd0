"""Link impairment without netem: a userspace L2 relay (delay/jitter/loss/rate), iptables loss, tc rate
caps, link down/up, and the state file that names where a topology put its link nodes."""
