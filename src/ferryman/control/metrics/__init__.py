"""What the control plane reads of the fleet each tick: traffic, load, feedback signals."""
