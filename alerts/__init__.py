"""Generated Prometheus recording and alert rules (built in a later issue)."""
