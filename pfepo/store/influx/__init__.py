"""InfluxDB history backend: line-protocol writes through an on-disk spool, InfluxQL/Flux reads.

One module per concern, read in this order:

* lineproto.py - samples and events to line protocol (pure);
* write.py - posting it (v1 ``/write`` over httpx, v2 through influxdb-client), failures sorted into
  retry or reject;
* store.py - :class:`InfluxStore`, the spool and the one sender thread that keep writes off the
  caller's thread and in order through an outage;
* query.py - reading back through InfluxQL or Flux;
* check.py - the start-up check that names the setting to fix, and :func:`open_influx_store`;
* clients.py - the HTTP clients built from the config.

Schema: docs/history-store.md.
"""

from pfepo.store.influx.check import InfluxSetupError, check_influx, open_influx_store
from pfepo.store.influx.clients import http_client, v2_client
from pfepo.store.influx.lineproto import EVENTS, MEASUREMENT, LineEncoder, encode_event, to_ns
from pfepo.store.influx.query import FluxReader, InfluxQLReader, flux_query, series_to_samples
from pfepo.store.influx.store import InfluxStore

__all__ = [
    "EVENTS", "MEASUREMENT", "FluxReader", "InfluxQLReader", "InfluxSetupError", "InfluxStore", "LineEncoder",
    "check_influx", "encode_event", "flux_query", "http_client", "open_influx_store", "series_to_samples",
    "to_ns", "v2_client",
]
