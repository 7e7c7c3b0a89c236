"""Rollouts: plans, gates, the strategies' decisions, the controller and steering."""
