"""The lab and benchmarks beside the controller: link impairment (``impair``) and ``pfepo bench``.

Not part of the daemon: installed with the ``lab`` extra (Mininet, matplotlib), used by
``pfepo bench|impair|demo``, mininet_topologies and the tests. ``pfepo`` never imports it.
"""
