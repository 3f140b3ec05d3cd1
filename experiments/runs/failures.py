"""How a trial fails after it ran: its results are written, then one of these is raised, and
the command line prints its message and exits with 1."""

from __future__ import annotations


class TrialFailed(RuntimeError):
    """The trial ran but cannot be trusted; the message says why and where its results are."""
