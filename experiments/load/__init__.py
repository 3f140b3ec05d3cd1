"""What runs inside a host to make load: the load generator and the bench's sink."""
