"""Actions out: application scaling executors and the dispatcher that calls them off the decision path."""
