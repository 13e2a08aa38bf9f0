"""Generated Grafana dashboards (built in a later issue)."""
