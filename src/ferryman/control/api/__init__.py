"""The control-plane REST API (/api/v1)."""
