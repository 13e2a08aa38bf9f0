"""Measure the engine: records, sidecar proxy, engine /metrics reader, simulated engine."""
