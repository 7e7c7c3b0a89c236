"""The control plane: API, deployments, reconciler, gateway, autoscaler."""
