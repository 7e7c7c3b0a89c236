"""The ``ferryman`` command line."""
