"""Generated Prometheus recording and alert rules."""
