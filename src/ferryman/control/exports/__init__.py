"""Configuration for teams' own tools: Prometheus and Grafana."""
