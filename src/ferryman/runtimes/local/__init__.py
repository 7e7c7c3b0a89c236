"""The ``local`` runtime: replicas and the gateway as processes on this machine."""

from ferryman.runtimes.local.runtime import LocalRuntime

__all__ = ["LocalRuntime"]
