"""Plotting helpers every picture shares: a slide-sized figure, the colours, room for labels.

Pictures are drawn with matplotlib's Agg canvas into memory: no screen is needed, and
pyplot's global state is avoided. Import this module only when a picture is drawn.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import matplotlib
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from experiments.analysis.metrics import RequestRecord

# Sized for a 16:9 slide: 12 x 6.75 inches at 150 dpi is 1800 x 1012 pixels.
FIGURE_SIZE = (12.0, 6.75)


DPI = 150


STYLE = {
    "font.size": 14,
    "axes.titlesize": 15,
    "axes.labelsize": 14,
    "legend.fontsize": 13,
    "figure.titlesize": 18,
    "axes.spines.top": False,
    "axes.spines.right": False,
}


OK_COLOUR = "tab:green"


FAILED_COLOUR = "tab:red"  # red means "failed" in every picture, so no server gets it


FAULT_COLOUR = "black"


# Servers get these in the order they first answered: primary blue, secondary orange.
SERVER_COLOURS = ("tab:blue", "tab:orange", "tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan")


UNKNOWN_SERVER = "(no X-Served-By)"


# Event labels (fault, VIP moves) sit in rows at the top of a panel; the y axes leave room for them.
LABEL_ROW_PT = 22  # the height of one row of labels, in points


MAX_LABEL_ROWS = 3  # a fourth VIP move goes back to the first row


PANEL_HEIGHT_PT = {1: 350, 2: 160}  # about how tall a panel is, in a figure of 1 or 2 panels


@contextmanager
def figure(path: Path, rows: int = 1) -> Iterator[list[Axes]]:
    """A slide-sized figure with `rows` panels, one above the other; saved as a PNG at `path` on exit.

    The Agg canvas draws into memory: no screen is needed, and pyplot's global state is avoided.
    """
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=FIGURE_SIZE, dpi=DPI, layout="constrained")
        FigureCanvasAgg(fig)
        axes = fig.subplots(rows, 1, squeeze=False)[:, 0]
        yield list(axes)
        fig.savefig(path, dpi=DPI)


def server_colours(records: Sequence[RequestRecord]) -> dict[str, str]:
    """A colour per server, in the order the servers first answered: the primary is blue in every picture."""
    servers: list[str] = []
    for record in sorted(records, key=lambda r: r.sent_at):
        name = record.served_by or UNKNOWN_SERVER
        if record.ok and name not in servers:
            servers.append(name)
    colours = {name: SERVER_COLOURS[i % len(SERVER_COLOURS)] for i, name in enumerate(servers)}
    if UNKNOWN_SERVER in colours:
        colours[UNKNOWN_SERVER] = "tab:gray"
    return colours


def room_for_labels(rows: int, panels: int) -> float:
    """The share of a panel's height that `rows` rows of event labels take."""
    return min((rows * LABEL_ROW_PT + 10) / PANEL_HEIGHT_PT[panels], 0.6)


def top_with_room(highest: float, rows: int, panels: int) -> float:
    """The top of a linear y axis that leaves room above `highest` for the event labels."""
    return highest / (1 - room_for_labels(rows, panels))


def bottom_with_room(lowest: float, top: float, rows: int, panels: int) -> float:
    """The bottom of a log y axis that leaves room below `lowest` for the event labels."""
    share = room_for_labels(rows, panels)
    decades = math.log10(top / lowest) * share / (1 - share)
    return lowest / 10**decades


def legend_dot(colour: str, label: str) -> Line2D:
    return Line2D([], [], marker="o", linestyle="", color=colour, markersize=9, label=label)
