"""Runs: one trial from start to stop with a drive (load then fault, soak, bench, demo), and the
live instruments."""
