"""The failover controller: pure decisions (failover.py, flows.py) under a thin os-ken app."""
