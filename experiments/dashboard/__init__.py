"""The demo's live dashboard: a web page for the projector (see server.py)."""
