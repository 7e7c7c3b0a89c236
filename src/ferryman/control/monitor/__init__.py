"""The monitor: samples, history, alert rules, webhooks out, the payload collector."""
