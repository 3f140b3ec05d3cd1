"""Reports with pictures: what a user of the service saw during a failover, ready for a classroom.

`write_report(run_dir)` reads a run folder (see experiments/runs/trial.py for its layout) and writes,
next to the data:

    throughput.png         successful and failed requests per 100 ms, fault and VIP moves marked
    latency.png            every request's latency over its send time, coloured by server
    served_by.png          which server answered the successful requests of each 100 ms
    replication_lag.png    the replication lag over time, only if replication.csv exists
    report.md              the figures of summary.json in one table, the pictures, how to read them

A multi-trial run folder gets the pictures above in each trial-NN/ folder, and at the top
`failover_gap_cdf.png` (the failover gap of every trial) and a report.md with the figures over
all trials and a link to each trial's report.

Every number in a report is read from the run folder's files; nothing is typed in here.
The time axis of every picture is in seconds from the start of the load, which is the moment
the first request was scheduled: so with the default config the fault is at 10 s, as configured
(the "load_started" event is logged a moment earlier, while the load generator starts up).
A problem with the input files is a `ReportError` whose message names the file.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import NullLocator

from experiments.analysis import metrics
from experiments.analysis.metrics import RequestRecord
from experiments.results import files
from experiments.results.html import write_html
from experiments.results.plots import (
    FAILED_COLOUR,
    FAULT_COLOUR,
    LABEL_ROW_PT,
    MAX_LABEL_ROWS,
    OK_COLOUR,
    UNKNOWN_SERVER,
    bottom_with_room,
    figure,
    legend_dot,
    server_colours,
    top_with_room,
)
from experiments.results.records import (
    ReportError,
    checked_events,
    checked_number,
    checked_replication,
    checked_requests,
    read_summary,
)
from experiments.results.tables import format_value, markdown_table

BUCKET_S = 0.1  # the width of a bar in the pictures: 100 ms of load
ZOOM_BEFORE_S = 0.5  # the zoomed panels show this long before the fault...
ZOOM_AFTER_S = 1.0  # ...and this long after it (or after the first VIP move, if later)


# -- reading the run folder ----------------------------------------------------------------


@dataclass(frozen=True)
class Trial:
    """What the pictures of one trial are drawn from; times are seconds from the start of the load."""

    folder: Path
    summary: dict[str, Any]
    records: list[RequestRecord]
    origin: float  # epoch seconds of the first scheduled request: time 0 of every picture
    fault_s: float | None  # when the fault was injected, None without a fault
    vip_moves: list[tuple[float, str]]  # (time, the server that got the virtual IP)
    replication: list[tuple[float, float]]  # (time, lag in ms); empty without replication.csv

    @property
    def scenario(self) -> str:
        return str(self.summary.get("scenario") or self.folder.name)

    @property
    def end_s(self) -> float:
        """The end of the last 100 ms bucket with a request in it."""
        last = max(r.sent_at for r in self.records) - self.origin
        return (int(last / BUCKET_S) + 1) * BUCKET_S


def load_trial(trial_dir: Path) -> Trial:
    """Everything the pictures of one trial need, read and checked; ReportError naming a bad file."""
    summary = read_summary(trial_dir)
    records = checked_requests(trial_dir / files.REQUESTS)
    origin = min(r.scheduled_at for r in records)
    fault_at = checked_number(summary.get("fault_at"), trial_dir / files.SUMMARY, "fault_at")
    for key in ("latency_ms_before", "latency_ms_after", "served_by_before", "served_by_after"):
        if not isinstance(summary.get(key), dict | None):
            raise ReportError(f"{trial_dir / files.SUMMARY}: {key} should be an object or null")
    events = checked_events(trial_dir)
    moves = [(e["time"] - origin, str(e.get("server") or "?"))
             for e in events if e["kind"] == metrics.VIP_MOVED]
    replication = [(t - origin, lag) for t, lag in checked_replication(trial_dir / files.REPLICATION)]
    return Trial(
        folder=trial_dir,
        summary=summary,
        records=records,
        origin=origin,
        fault_s=None if fault_at is None else fault_at - origin,
        vip_moves=moves,
        replication=replication,
    )


# -- drawing helpers -----------------------------------------------------------------------


def _moves_in(trial: Trial, span: tuple[float, float]) -> list[tuple[float, str]]:
    return [(when, server) for when, server in trial.vip_moves if span[0] <= when <= span[1]]


def _label_rows(trial: Trial, span: tuple[float, float]) -> int:
    """How many rows of event labels a panel showing `span` needs (see `_mark_events`)."""
    return max(1, min(len(_moves_in(trial, span)), MAX_LABEL_ROWS))


def _mark_events(
    ax: Axes, trial: Trial, colours: Mapping[str, str], span: tuple[float, float], label_at_top: bool = True
) -> None:
    """Vertical lines for the fault and every VIP move within `span`, each with a short label.

    The fault label sits left of its line and the VIP labels right of theirs: a failover takes
    milliseconds, so on a 20 s axis the lines almost coincide and the labels must not overlap.
    Events outside `span` are left out: their labels would be drawn outside the panel.
    """
    y, va, down = (1.0, "top", -1) if label_at_top else (0.0, "bottom", 1)
    box = {"boxstyle": "round,pad=0.2", "facecolor": "white", "edgecolor": "none", "alpha": 0.85}
    if trial.fault_s is not None and span[0] <= trial.fault_s <= span[1]:
        ax.axvline(trial.fault_s, color=FAULT_COLOUR, linestyle="--", linewidth=2)
        ax.annotate("fault", (trial.fault_s, y), xycoords=ax.get_xaxis_transform(), xytext=(-6, 4 * down),
                    textcoords="offset points", ha="right", va=va, fontweight="bold", bbox=box)
    for row, (when, server) in enumerate(_moves_in(trial, span)):
        colour = colours.get(server, "tab:gray")
        ax.axvline(when, color=colour, linestyle=":", linewidth=2.5)
        # Several moves (a failback) go on successive rows so that their labels stay apart.
        offset = 4 + LABEL_ROW_PT * (row % MAX_LABEL_ROWS)
        ax.annotate(f"VIP \u2192 {server}", (when, y), xycoords=ax.get_xaxis_transform(),
                    xytext=(6, offset * down), textcoords="offset points", ha="left", va=va, color=colour,
                    fontweight="bold", bbox=box)


def _zoom_window(trial: Trial) -> tuple[float, float] | None:
    """The time range of the zoomed panel: around the fault, up to past the first VIP move after it."""
    if trial.fault_s is None:
        return None
    end = trial.fault_s + ZOOM_AFTER_S
    moves_after = [when for when, _ in trial.vip_moves if when >= trial.fault_s]
    if moves_after:
        end = max(end, min(moves_after) + ZOOM_AFTER_S)
    start, end = max(0.0, trial.fault_s - ZOOM_BEFORE_S), min(end, trial.end_s)
    # A fault outside the load (after its last request, say) leaves nothing to zoom in on.
    return (start, end) if start < end else None


@contextmanager
def _whole_and_zoom(path: Path, trial: Trial) -> Iterator[list[tuple[Axes, tuple[float, float]]]]:
    """One panel for the whole run and, with a fault, a second one zoomed in on the failover.

    A failover takes tens of milliseconds: on the whole-run panel it is one bar wide, so the
    zoomed panel is what shows a class the requests that were lost and who answered after.
    """
    zoom = _zoom_window(trial)
    whole = (0.0, trial.end_s)
    rows = 1 if zoom is None else 2
    with figure(path, rows) as axes:
        panels = [(axes[0], whole)]
        if zoom is not None:
            # Shade the zoomed range on the whole-run panel, so the eye links the two.
            axes[0].axvspan(*zoom, color="0.88", zorder=0)
            panels.append((axes[1], zoom))
        yield panels
        for ax, (start, end) in panels:
            ax.set_xlim(start, end)
            ax.set_xlabel("time since the load started (s)")
        if zoom is not None:
            title = f"zoom on the failover: {zoom[0]:.1f} s to {zoom[1]:.1f} s (grey in the top panel)"
            axes[1].set_title(title, loc="left")


# -- the pictures of a trial ---------------------------------------------------------------


def _buckets(trial: Trial) -> list[dict[str, Any]]:
    return metrics.throughput_buckets(trial.records, BUCKET_S, origin=trial.origin)


def draw_throughput(trial: Trial, path: Path) -> None:
    """Successful (green) and failed (red) requests per 100 ms, stacked, by send time."""
    buckets = _buckets(trial)
    starts = [b["start"] - trial.origin for b in buckets]
    ok = [b["ok"] for b in buckets]
    failed = [b["failed"] for b in buckets]
    colours = server_colours(trial.records)
    highest = max(b["sent"] for b in buckets)
    with _whole_and_zoom(path, trial) as panels:
        for ax, span in panels:
            ax.bar(starts, ok, width=BUCKET_S, align="edge", color=OK_COLOUR, linewidth=0)
            ax.bar(starts, failed, bottom=ok, width=BUCKET_S, align="edge", color=FAILED_COLOUR, linewidth=0)
            ax.set_ylim(0, top_with_room(highest, _label_rows(trial, span), len(panels)))
            ax.set_ylabel("requests per 100 ms")
            _mark_events(ax, trial, colours, span)
        fig = panels[0][0].figure
        fig.suptitle(f"{trial.scenario}: requests per 100 ms, by the time they were sent")
        fig.legend(
            handles=[Patch(color=OK_COLOUR, label="successful"), Patch(color=FAILED_COLOUR, label="failed")],
            loc="outside lower center", ncols=2, frameon=False,
        )


def draw_latency(trial: Trial, path: Path) -> None:
    """Each request's latency (log scale) over its send time; failed requests as red crosses on top."""
    colours = server_colours(trial.records)
    answered = [r for r in trial.records if r.ok and r.latency_ms is not None]
    failed = [r for r in trial.records if not r.ok or r.latency_ms is None]
    highest = max((r.latency_ms for r in answered), default=1000.0)
    lowest = min((r.latency_ms for r in answered), default=1.0)
    # Failed requests have no latency: they go in a red band above every real latency.
    failed_y = highest * 3
    top = failed_y * 1.6 if failed else highest * 2
    with _whole_and_zoom(path, trial) as panels:
        for ax, span in panels:
            bottom = bottom_with_room(lowest, top, _label_rows(trial, span), len(panels))
            for server, colour in colours.items():
                mine = [r for r in answered if (r.served_by or UNKNOWN_SERVER) == server]
                ax.scatter([r.sent_at - trial.origin for r in mine], [r.latency_ms for r in mine],
                           s=8, color=colour, linewidths=0)
            if failed:
                _draw_failed_band(ax, [r.sent_at - trial.origin for r in failed], failed_y)
            ax.set_yscale("log")
            ax.set_ylim(bottom, top)
            _latency_ticks(ax, lowest / 2, highest * 1.5, failed_y if failed else None)
            ax.set_ylabel("latency (ms, log scale)")
            _mark_events(ax, trial, colours, span, label_at_top=False)
        fig = panels[0][0].figure
        fig.suptitle(f"{trial.scenario}: latency of each request, by the time it was sent")
        handles = [legend_dot(colour, f"served by {server}") for server, colour in colours.items()]
        if failed:
            handles.append(Line2D([], [], marker="x", linestyle="", color=FAILED_COLOUR, markersize=9,
                                  markeredgewidth=2, label="failed (no answer or an error)"))
        fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), frameon=False)


def _draw_failed_band(ax: Axes, sent_s: Sequence[float], y: float) -> None:
    """A pale red band at height `y` with a red cross for each failed request, at its send time."""
    ax.axhspan(y / 1.6, y * 1.6, color=FAILED_COLOUR, alpha=0.08, zorder=0)
    ax.scatter(sent_s, [y] * len(sent_s), marker="x", s=60, color=FAILED_COLOUR, linewidths=2)


def _latency_ticks(ax: Axes, low: float, high: float, failed_y: float | None) -> None:
    """Ticks at 0.1, 1, 10, 100... ms written as plain numbers, and "failed" at the failed band.

    A failed request has no latency, so its band gets a word, not a number.
    """
    decades = range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1)
    ticks = [10.0**k for k in decades if low <= 10.0**k <= high]
    if len(ticks) < 3:
        # A narrow range (all answers within a few ms) needs 1, 2, 5, 10... to be readable.
        ticks = [m * 10.0**k for k in decades for m in (1, 2, 5) if low <= m * 10.0**k <= high]
    labels = [f"{tick:g}" for tick in ticks]
    if failed_y is not None:
        ticks.append(failed_y)
        labels.append("failed")
    ax.set_yticks(ticks, labels)
    ax.yaxis.set_minor_locator(NullLocator())
    ax.grid(axis="y", color="0.9")
    if failed_y is not None:
        failed_label = ax.get_yticklabels()[-1]
        failed_label.set_color(FAILED_COLOUR)
        failed_label.set_fontweight("bold")


def draw_served_by(trial: Trial, path: Path) -> None:
    """Per 100 ms, the share of the successful requests each server answered, stacked to 100 %."""
    buckets = [b for b in _buckets(trial) if b["ok"] > 0]  # no success: nothing to share, a gap
    colours = server_colours(trial.records)
    starts = [b["start"] - trial.origin for b in buckets]
    with figure(path) as (ax,):
        bottom = [0.0] * len(buckets)
        for server, colour in colours.items():
            key = "" if server == UNKNOWN_SERVER else server
            share = [b["served_by"].get(key, 0) / b["ok"] * 100 for b in buckets]
            ax.bar(starts, share, bottom=bottom, width=BUCKET_S, align="edge", color=colour,
                   linewidth=0, label=server)
            bottom = [low + high for low, high in zip(bottom, share, strict=True)]
        span = (0.0, trial.end_s)
        _mark_events(ax, trial, colours, span)
        ax.set_xlim(*span)
        ax.set_ylim(0, top_with_room(100, _label_rows(trial, span), 1))
        ax.set_yticks(range(0, 101, 25))
        ax.set_xlabel("time since the load started (s)")
        ax.set_ylabel("share of successful requests (%)")
        ax.figure.suptitle(f"{trial.scenario}: which server answered, per 100 ms")
        if colours:
            ax.figure.legend(loc="outside lower center", ncols=len(colours), frameon=False)
        else:
            ax.text(0.5, 0.5, "no request succeeded", transform=ax.transAxes, ha="center",
                    color=FAILED_COLOUR, fontweight="bold")


def draw_replication_lag(trial: Trial, path: Path) -> None:
    """The replication lag (ms) over time, from replication.csv."""
    colours = server_colours(trial.records)
    with figure(path) as (ax,):
        rows = sorted(trial.replication)
        ax.plot([t for t, _ in rows], [lag for _, lag in rows],
                color="0.3", linewidth=2, marker="o", markersize=3)
        highest = max(max(lag for _, lag in trial.replication), 1.0)
        span = (0.0, max(trial.end_s, *(t for t, _ in trial.replication)))
        ax.set_xlim(*span)
        ax.set_ylim(0, top_with_room(highest, _label_rows(trial, span), 1))
        _mark_events(ax, trial, colours, span)
        ax.set_xlabel("time since the load started (s)")
        ax.set_ylabel("replication lag (ms)")
        ax.figure.suptitle(f"{trial.scenario}: how far the replica was behind")


def draw_gap_cdf(
    gaps: Sequence[float], median: float | None, p95: float | None, title: str, path: Path
) -> None:
    """The CDF of the failover gaps of several trials, with the median and p95 marked."""
    ordered = sorted(gaps)
    shares = [(i + 1) / len(ordered) * 100 for i in range(len(ordered))]
    box = {"boxstyle": "round,pad=0.2", "facecolor": "white", "edgecolor": "none", "alpha": 0.85}
    with figure(path) as (ax,):
        # Start the staircase at (0, 0 %): no trial has a gap shorter than 0 ms.
        right = max(ordered[-1], p95 or 0.0) * 1.2 or 1.0
        # The staircase ends at 100 %, flat to the right edge: every trial had a shorter gap.
        ax.step([0.0, *ordered, right], [0.0, *shares, 100.0], where="post", color="tab:blue", linewidth=2.5)
        ax.plot(ordered, shares, "o", color="tab:blue", markersize=7, label="one trial")
        # The median's label goes left of its line and the p95's right: they are often close.
        for value, name, side in ((median, "median", -1), (p95, "p95", 1)):
            if value is None:
                continue
            ax.axvline(value, color="black" if name == "median" else "tab:red", linestyle="--", linewidth=2)
            ax.annotate(f"{name} {format_value(value)} ms", (value, 0.98), xycoords=ax.get_xaxis_transform(),
                        xytext=(6 * side, 0), textcoords="offset points", ha="left" if side > 0 else "right",
                        va="top", fontweight="bold", bbox=box)
        ax.set_xlim(0, right)
        ax.set_ylim(0, 115)
        ax.set_yticks(range(0, 101, 25))
        ax.set_xlabel("failover gap: last answer of the primary to first of the secondary (ms)")
        ax.set_ylabel("trials with this gap or shorter (%)")
        ax.figure.suptitle(title)


# -- report.md -----------------------------------------------------------------------------


def _pair(before: Any, after: Any) -> str:
    return f"{format_value(before)} / {format_value(after)}"


def _lags(lag: Mapping[str, Any] | None) -> str:
    lag = lag or {}
    return " / ".join(format_value(lag.get(key)) for key in ("p50", "p99", "max"))


def schedule_note(summary: Mapping[str, Any]) -> str | None:
    """What the report says when the load generator's lateness shows in the latency, else None."""
    if not summary.get("schedule_latency_differs"):
        return None
    lag = summary.get("send_lag_ms") or {}
    return (f"**The load generator sent late** (send lag p99 {format_value(lag.get('p99'))} ms, at most "
            f"{format_value(lag.get('max'))} ms), so the latency measured from each send hides part of "
            "what a user arriving on time would wait: read the p99 from the schedule as the user's, and "
            "give the generator more CPU (or a lower rate) for figures where the two agree.")


def trial_figures(summary: Mapping[str, Any], fault_s: float | None) -> list[tuple[str, str]]:
    """(label with unit, value) for every figure of a trial's summary.json, in reading order."""
    before = summary.get("latency_ms_before") or {}
    after = summary.get("latency_ms_after") or {}
    return [
        ("Scenario", format_value(summary.get("scenario"))),
        ("Fault injected (s after the load started)", "no fault" if fault_s is None else f"{fault_s:.3f}"),
        ("Server holding the virtual IP at the end", format_value(summary.get("active_at_end"))),
        ("Requests sent", format_value(summary.get("requests_total"))),
        ("Requests answered successfully", format_value(summary.get("requests_ok"))),
        ("Requests failed", format_value(summary.get("requests_failed"))),
        ("Availability (%)", format_value(summary.get("availability_pct"))),
        ("Window before / after the fault (s)",
         _pair(summary.get("window_s_before"), summary.get("window_s_after"))),
        ("Throughput before / after the fault (req/s)",
         _pair(summary.get("throughput_rps_before"), summary.get("throughput_rps_after"))),
        ("Latency p50 before / after the fault (ms)", _pair(before.get("p50"), after.get("p50"))),
        ("Latency p95 before / after the fault (ms)", _pair(before.get("p95"), after.get("p95"))),
        ("Latency p99 before / after the fault (ms)", _pair(before.get("p99"), after.get("p99"))),
        ("Latency p99 from the schedule, before / after the fault (ms)",
         _pair((summary.get("latency_from_schedule_ms_before") or {}).get("p99"),
               (summary.get("latency_from_schedule_ms_after") or {}).get("p99"))),
        ("The load generator's send lag p50 / p99 / max (ms)", _lags(summary.get("send_lag_ms"))),
        ("Requests failed before / after the fault",
         _pair(summary.get("requests_failed_before"), summary.get("requests_failed_after"))),
        ("Served by, before the fault (successful requests)", format_value(summary.get("served_by_before"))),
        ("Served by, after the fault (successful requests)", format_value(summary.get("served_by_after"))),
        ("Detection: fault to VIP move (ms)", format_value(summary.get("detection_ms"))),
        ("Outage window: fault to the first request sent that succeeded (ms)",
         format_value(summary.get("outage_window_ms"))),
        ("Failover gap: last answer of the primary to first of the secondary (ms)",
         format_value(summary.get("failover_gap_ms"))),
        ("Acknowledged writes (POST answered 201)", format_value(summary.get("acked_writes"))),
        ("Acknowledged writes lost", format_value(summary.get("acked_writes_lost"))),
        ("Two databases seen writable at once: windows, and their total (ms)",
         _pair(summary.get("both_writable_windows"), summary.get("both_writable_ms"))),
        ("Two databases writable at once, at most (ms: the sampler's resolution included)",
         format_value(summary.get("both_writable_max_ms"))),
        ("VIP moves from the fault on", format_value(summary.get("vip_moves"))),
        ("VIP moves before the fault (false failovers)", format_value(summary.get("vip_moves_before_fault"))),
        ("Longest time without a successful answer after the fault (ms)",
         format_value(summary.get("interruption_ms"))),
        ("Promoted a lagging database", "; ".join(summary.get("promoted_lagging") or []) or "no"),
    ]


def _colour_name(colours: Mapping[str, str], server: str) -> str:
    return colours.get(server, "grey").removeprefix("tab:")


def _how_to_read_throughput(trial: Trial) -> str:
    s = trial.summary
    text = (
        "Each bar is 100 ms of load, placed at the time its requests were sent: the green part was "
        "answered successfully, the red part failed. "
    )
    if trial.fault_s is None:
        return text + (
            "There was no fault in this run, so the bars should stay level and green "
            f"({format_value(s.get('throughput_rps_before'))} successful req/s): this is the reference to "
            "compare failover runs with."
        )
    failed_after = s.get("requests_failed_after")
    if failed_after == 0:
        failures = "Not one request failed after the fault. "
    else:
        failures = (
            f"The red part is the {format_value(failed_after)} requests that failed after the fault: they "
            "were in flight to the dead server, or sent before the switch forwarded them to the new one. "
        )
    return text + (
        "Point at the dashed black line, the fault, and at the dotted line right after it, where the "
        "controller moved the virtual IP; the lower panel zooms in on them. " + failures
        + "Once the new server answers, the bars should be all green at full height again, without the "
        f"user doing anything: compare {format_value(s.get('throughput_rps_before'))} req/s before the fault "
        f"with {format_value(s.get('throughput_rps_after'))} req/s after."
    )


def _how_to_read_latency(trial: Trial) -> str:
    s = trial.summary
    colours = server_colours(trial.records)
    servers = ", ".join(f"{_colour_name(colours, name)} for {name}" for name in colours)
    before = s.get("latency_ms_before") or {}
    after = s.get("latency_ms_after") or {}
    text = (
        "Each dot is one request: across is when it was sent, up is how long its full answer took. "
        "The scale is logarithmic, so that 2 ms and 200 ms answers both fit in one picture. "
        f"The colour says which server answered ({servers or 'none did'}). "
    )
    if any(not r.ok for r in trial.records):
        text += (
            "The red crosses in the band marked \"failed\" are requests that got no successful answer; "
            "they have no latency, so they sit apart at the top. "
        )
    if trial.fault_s is None:
        return text + f"Without a fault, the p95 latency was {format_value(before.get('p95'))} ms."
    return text + (
        "Point at the vertical lines in the zoomed lower panel: the dots change colour where the new "
        "server took over, and any request lost in the switch is a red cross between the fault and the "
        f"first dot of the new colour. Then compare the height of the dots: p95 "
        f"{format_value(before.get('p95'))} ms before the fault, {format_value(after.get('p95'))} ms after."
    )


def _how_to_read_served_by(trial: Trial) -> str:
    text = (
        "Each bar is the successful requests of 100 ms, split by the server that answered them "
        "(the X-Served-By header of the answer). A missing bar is 100 ms in which no request succeeded. "
    )
    if not trial.vip_moves:
        return text + "The virtual IP never moved in this run, so one server should fill every bar."
    return text + (
        "Point at the bar where the colour changes: that is the moment the secondary took over, "
        "right after the dotted line of the VIP move. "
        f"At the end, {format_value(trial.summary.get('active_at_end'))} held the virtual IP."
    )


def _how_to_read_replication(trial: Trial) -> str:
    return (
        "The line is how far the other database was behind, in milliseconds, over the run. A write "
        "that the client got a 201 for but that had not reached the other database when the primary "
        "died can be lost: point at the lag at the fault line. Acknowledged writes lost in this trial: "
        f"{format_value(trial.summary.get('acked_writes_lost'))}."
    )


def draw_stages(stages: Mapping[str, Any], path: Path, scenario: str) -> None:
    """A waterfall of the failover: one bar per stage, from the latest stage before it to its own
    time after the fault (a stage that came earlier than one listed before it is a tick)."""
    from experiments.results.plots import figure

    with figure(path) as (ax,):
        reached, names = 0.0, list(stages)
        for row, name in enumerate(names):
            at = stages[name]
            if not isinstance(at, int | float):
                ax.text(0, row, "  did not happen", va="center", fontsize=11, color="tab:gray")
                continue
            start = min(reached, at)
            ax.barh(row, max(at - start, 0.05), left=start, color=f"C{row}", height=0.6)
            ax.text(at, row, f"  {at:.1f} ms", va="center", fontsize=11)
            reached = max(reached, at)
        ax.set_yticks(range(len(names)), names)
        ax.invert_yaxis()
        ax.set_xlabel("milliseconds after the fault")
        ax.set_xlim(0, max(reached * 1.25, 1.0))
        ax.set_title(f"{scenario}: where the milliseconds of the failover went")


def stage_steps(stages: Mapping[str, Any]) -> list[tuple[str, float]]:
    """How much each stage that happened added: its time after the latest stage before it."""
    steps, reached = [], 0.0
    for name, at in stages.items():
        if isinstance(at, int | float):
            steps.append((name, max(at - reached, 0.0)))
            reached = max(reached, at)
    return steps


def _how_to_read_stages(stages: Mapping[str, Any]) -> str:
    text = ("Each bar is one stage of the failover, from the stage before it to its own time after the "
            "fault: the kernel having it (the cable's interface down, the killed process gone), the "
            "switch reporting the port down (or the first failed probe), the controller's "
            "decision, the flow sent and confirmed by the switch, the first request the new server "
            "answered and its first success. ")
    steps = stage_steps(stages)
    if steps:
        name, took = max(steps, key=lambda step: step[1])
        text += f"The longest stage here is \"{name}\": {took:.1f} ms."
    return text


def _draw_trial_pictures(trial: Trial) -> list[tuple[str, str, str]]:
    """Draw the pictures of a trial; (file name, heading, how to read it) of each one drawn."""
    folder = trial.folder
    draw_throughput(trial, folder / files.THROUGHPUT_PNG)
    draw_latency(trial, folder / files.LATENCY_PNG)
    draw_served_by(trial, folder / files.SERVED_BY_PNG)
    pictures = [
        (files.THROUGHPUT_PNG, "Requests per 100 ms", _how_to_read_throughput(trial)),
        (files.LATENCY_PNG, "Latency of each request", _how_to_read_latency(trial)),
        (files.SERVED_BY_PNG, "Which server answered", _how_to_read_served_by(trial)),
    ]
    stages = trial.summary.get("failover_stages_ms")
    stages_path = folder / files.STAGES_PNG
    if isinstance(stages, dict) and any(isinstance(v, int | float) for v in stages.values()):
        draw_stages(stages, stages_path, trial.scenario)
        pictures.append((files.STAGES_PNG, "Where the milliseconds went", _how_to_read_stages(stages)))
    else:
        stages_path.unlink(missing_ok=True)
    lag_path = folder / files.REPLICATION_PNG
    if trial.replication:
        draw_replication_lag(trial, lag_path)
        pictures.append((files.REPLICATION_PNG, "Replication lag", _how_to_read_replication(trial)))
    else:
        # A picture left from an earlier report would no longer match the data.
        lag_path.unlink(missing_ok=True)
    return pictures


def write_trial_report(trial_dir: Path, up_link: str | None = None) -> Path:
    """Pictures and report.md of one trial folder; returns the path of report.md.

    `up_link` is a relative link to the report of the whole run, for a trial of a multi-trial run.
    """
    trial = load_trial(Path(trial_dir))
    pictures = _draw_trial_pictures(trial)
    lines = [f"# Failover report: {trial.scenario}", ""]
    lines.append(f"Scenario **{trial.scenario}**, run folder `{trial.folder.name}`.")
    if up_link is not None:
        lines.append(f"This is one trial of a run with several: [the report over all trials]({up_link}).")
    lines += ["", "## The figures", "", "From `summary.json`; latencies are over successful requests.", ""]
    lines += markdown_table(["Figure", "Value"], trial_figures(trial.summary, trial.fault_s))
    note = schedule_note(trial.summary)
    if note:
        lines += ["", note]
    for file_name, heading, how_to_read in pictures:
        lines += ["", f"## {heading}", "", f"![{heading}]({file_name})", ""]
        lines.append(f"**How to read this.** {how_to_read}")
    path = trial.folder / files.REPORT
    path.write_text("\n".join(lines) + "\n")
    write_html(path)
    return path


AGGREGATE_LABELS = {
    "failover_gap_ms": "Failover gap (ms)",
    "detection_ms": "Detection: fault to VIP move (ms)",
    "outage_window_ms": "Outage window (ms)",
    "availability_pct": "Availability (%)",
    "requests_failed": "Requests failed",
    "throughput_rps_before": "Throughput before the fault (req/s)",
    "throughput_rps_after": "Throughput after the fault (req/s)",
    "acked_writes": "Acknowledged writes",
    "acked_writes_lost": "Acknowledged writes lost",
    "vip_moves": "VIP moves from the fault on",
    "vip_moves_before_fault": "VIP moves before the fault (false failovers)",
    "interruption_ms": "Longest time without a successful answer (ms)",
    "both_writable_ms": "Two databases seen writable at once (ms)",
    "both_writable_windows": "Windows with two databases seen writable",
    "both_writable_max_ms": "Two databases writable at once, at most (ms)",
    "both_writable_longest_ms": "Longest window with two writable databases (ms)",
}


def _aggregate_rows(summary: Mapping[str, Any]) -> list[list[str]]:
    rows = []
    for key in metrics.AGGREGATED_KEYS:
        figures = summary.get(key)
        if not isinstance(figures, Mapping):
            continue
        rows.append([AGGREGATE_LABELS.get(key, key)]
                    + [format_value(figures.get(name)) for name in ("n", "median", "p95", "max")])
    return rows


def _trial_row(trial_dir: Path, summary: Mapping[str, Any]) -> list[str]:
    keys = ("failover_gap_ms", "detection_ms", "availability_pct", "requests_failed", "acked_writes_lost")
    return ([trial_dir.name] + [format_value(summary.get(key)) for key in keys]
            + [f"[report]({trial_dir.name}/{files.REPORT})"])


def _write_run_report(run_dir: Path, trial_dirs: Sequence[Path]) -> Path:
    """The report of a multi-trial run: each trial's report, then the one over all trials."""
    summary = read_summary(run_dir)
    scenario = str(summary.get("scenario") or run_dir.name)
    for trial_dir in trial_dirs:
        write_trial_report(trial_dir, up_link=f"../{files.REPORT}")
    trial_summaries = [read_summary(trial_dir) for trial_dir in trial_dirs]
    gaps = [gap for trial_dir, s in zip(trial_dirs, trial_summaries, strict=True)
            if (gap := checked_number(s.get("failover_gap_ms"), trial_dir / files.SUMMARY, "failover_gap_ms"))
            is not None]
    summary_path = run_dir / files.SUMMARY
    gap_figures = summary.get("failover_gap_ms")
    if not isinstance(gap_figures, Mapping):
        raise ReportError(f"{summary_path}: failover_gap_ms should be {{n, median, p95, max}}")

    lines = [f"# Failover report: {scenario}, {len(trial_dirs)} trials", ""]
    lines.append(f"Scenario **{scenario}**, run folder `{run_dir.name}`, "
                 f"{format_value(summary.get('trials', len(trial_dirs)))} trials.")
    lines += ["", "## The figures over all trials", "",
              "From `summary.json`: `n` is how many trials had the figure (a trial without a failover has "
              "no failover gap).", ""]
    lines += markdown_table(["Figure", "n", "Median", "p95", "Max"], _aggregate_rows(summary))
    lines += ["", "## Failover gap across trials", ""]
    cdf_path = run_dir / files.GAP_CDF_PNG
    if gaps:
        median = checked_number(gap_figures.get("median"), summary_path, "failover_gap_ms.median")
        p95 = checked_number(gap_figures.get("p95"), summary_path, "failover_gap_ms.p95")
        draw_gap_cdf(gaps, median, p95, f"{scenario}: failover gap over {len(gaps)} trials", cdf_path)
        lines += [
            f"![Failover gap across trials]({files.GAP_CDF_PNG})", "",
            "**How to read this.** Each dot is one trial; the staircase climbs by one trial at its failover "
            "gap, so the height at a gap is the share of trials that recovered at least that fast. Point at "
            "the median (half of the trials were faster) and at the p95 (what a user should expect in "
            "the worst case but one in twenty). A steep staircase means a predictable failover; "
            "a long tail to the right means that sometimes it takes much longer.",
        ]
    else:
        cdf_path.unlink(missing_ok=True)
        lines.append("No trial had a failover gap (no failover happened), so there is nothing to plot.")
    lines += ["", "## Each trial", ""]
    lines += markdown_table(
        ["Trial", "Failover gap (ms)", "Detection (ms)", "Availability (%)", "Requests failed",
         "Acknowledged writes lost", "Report"],
        [_trial_row(d, s) for d, s in zip(trial_dirs, trial_summaries, strict=True)],
    )
    path = run_dir / files.REPORT
    path.write_text("\n".join(lines) + "\n")
    write_html(path)
    return path


def write_report(run_dir: Path) -> Path:
    """Write report.md and its pictures into a run folder (single- or multi-trial); returns report.md.

    For a soak folder it rewrites soak.md and controller-resources.png instead, and returns soak.md;
    for a chaos run, chaos.md.

    Raises ReportError, naming the file, when an input file is missing or malformed.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ReportError(f"{run_dir}: not a folder")
    scenario = read_summary(run_dir).get("scenario") if (run_dir / files.SUMMARY).is_file() else None
    if scenario == "soak":
        # A soak has ten faults, not one: its own page (soak.md) and picture, not a trial report.
        from experiments.results.soak_report import write_soak_report

        write_soak_report(run_dir, read_summary(run_dir))
        return run_dir / files.SOAK_REPORT
    if (run_dir / files.STUDY_JSON).is_file():  # the published study: a sweep of load rates
        from experiments.results.study_report import rewrite_study_report

        return rewrite_study_report(run_dir)
    if scenario == "chaos":  # many faults, each judged by the nemesis's own checks
        from experiments.results.chaos_report import write_chaos_report

        return write_chaos_report(run_dir, read_summary(run_dir))
    trial_dirs = files.trial_dirs(run_dir)
    if trial_dirs and not (run_dir / files.REQUESTS).exists():
        return _write_run_report(run_dir, trial_dirs)
    return write_trial_report(run_dir)
