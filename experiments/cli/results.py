"""`report` (write a run folder's report again) and `compare` (runs side by side)."""

from __future__ import annotations

import argparse
from pathlib import Path

from experiments.cli.common import Commands, UsageError


def add_commands(commands: Commands) -> None:
    report = commands.add_parser("report", help="(re)write report.md and its pictures for a run folder")
    report.add_argument("run_dir", type=Path, metavar="DIR", help="a results/<scenario>-<timestamp> folder")
    report.set_defaults(handler=report_command)

    compare = commands.add_parser("compare", help="print and write a side-by-side table of runs")
    compare.add_argument("run_dirs", type=Path, nargs="+", metavar="DIR", help="run folders to compare")
    compare.add_argument("--out", type=Path, default=Path("results/compare.md"), metavar="FILE",
                         help="where to write the table as Markdown (and CSV beside it); "
                         "default results/compare.md")
    compare.set_defaults(handler=compare_command)


def report_command(args: argparse.Namespace) -> int:
    from experiments.results.report import ReportError, write_report

    try:
        print(f"report: {write_report(args.run_dir)}")
    except ReportError as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:
        raise UsageError(f"{exc.filename}: {exc.strerror}") from None
    return 0


def compare_command(args: argparse.Namespace) -> int:
    from experiments.results.compare import compare, write_comparison
    from experiments.results.report import ReportError

    try:
        print(compare(args.run_dirs))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        write_comparison(args.run_dirs, args.out)
    except ReportError as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:
        raise UsageError(f"{exc.filename}: {exc.strerror}") from None
    print(f"written: {args.out} and {args.out.with_suffix('.csv')}")
    return 0
