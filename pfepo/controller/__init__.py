"""Controller runtime state shared by the OpenFlow adapter, the REST API and the decision loop."""
