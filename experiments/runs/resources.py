"""A live instrument: the controller process's descriptors, threads and memory, sampled from /proc."""

from __future__ import annotations

import csv
import os
import threading
import time
from pathlib import Path

from experiments.analysis.soak import Sample

RESOURCE_COLUMNS = ("time", "fds", "threads", "rss_kb")


def read_process(pid: int) -> Sample:
    """Open descriptors, threads and resident memory (kB) of process `pid`, now."""
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            fields[key] = value.split()
    return Sample(time.time(), fds, int(fields["Threads"][0]), int(fields["VmRSS"][0]))


class ResourceSampler:
    """Samples one process every `interval` seconds in a thread, into a CSV and a list."""

    def __init__(self, pid: int, out: Path, interval: float) -> None:
        self.pid = pid
        self.interval = interval
        self.samples: list[Sample] = []
        self.file = open(out, "w", newline="")
        self.writer = csv.writer(self.file)
        self.writer.writerow(RESOURCE_COLUMNS)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(self.interval + 1)
        self.file.close()

    def _run(self) -> None:
        while True:
            try:
                sample = read_process(self.pid)
            except (OSError, KeyError, ValueError):
                return  # the process is gone: the verdict's controller check says so
            self.samples.append(sample)
            self.writer.writerow([f"{sample.time:.3f}", sample.fds, sample.threads, sample.rss_kb])
            self.file.flush()
            if self.stopping.wait(self.interval):
                return
