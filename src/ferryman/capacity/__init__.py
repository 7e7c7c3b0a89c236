"""Cost and capacity: what a version's variants carry, and what serving it costs.

``sweep`` measures (a real replica per serving configuration, loaded open-loop by ``load``);
``recommend`` and ``cost`` are pure functions of those measurements and an instance
``catalogue``. The measurements live in the registry (``ferryman.registry.capacity``).
"""
