"""Publish measurements: the metric catalogue and the Prometheus, JSON-lines sinks."""
