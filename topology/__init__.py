"""The network: the testbed's one config (config.py) and the Mininet topology built from it."""
