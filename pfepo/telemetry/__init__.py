"""Pure telemetry maths: counters to rates."""
