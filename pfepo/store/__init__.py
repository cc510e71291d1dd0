"""History stores: an embedded default and InfluxDB, behind one small interface (base.HistoryStore)."""
