"""Desired state into replicas: the reconciler, its plans, the autoscaler and forecast."""
