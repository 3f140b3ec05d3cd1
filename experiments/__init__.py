"""Experiments: drive load and faults through the testbed and turn the records into reports."""
