"""The testbed's life: start in order, faults, scenarios, the run lock, clean-up, exec."""
