"""Load, stress and soak testing of the service binary: start it on real services,
drive it with the workspace's load generator, judge the numbers (gates.py)."""
