"""Generated Grafana dashboards."""
