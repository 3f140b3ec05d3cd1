"""The lab guide works for a newcomer: every command of every exercise runs as written.

The commands are read from the guide itself (docs/lab-guide.md, the `sh` block under "All the
commands", one `# exercise N` marker per exercise), never copied here, and run in order with
`bash -c` from the project's folder, as a student pastes them. Each must exit 0, and what the
exercise says will appear does appear: the `results:` line and the run's report, the compare
tables, the lines the awk and cat commands are there to show, the figures the prose asks the
student to predict. The exercises write into results/lab/, as the guide says.

`sudo` is kept when it is installed; we are root, so without it the word is left out, as the
guide tells a root user to do. The demo (exercise 8) needs a terminal: it runs under util-linux
`script`, which gives it one; the commands the guide says to type "in a second terminal" run
while the demo runs.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from experiments.testbed.scenarios import HANG_S
from tests.integration.conftest import ROOT, leftovers

GUIDE = Path(ROOT) / "docs" / "lab-guide.md"
LAB = Path(ROOT) / "results" / "lab"
RUN_TIMEOUT_S = 300  # one command; the longest (three trials) takes about a minute
MARKER = re.compile(r"^# exercise (\d+)$")
ALONGSIDE = "second terminal"  # a comment with these words: the next commands run meanwhile
RESULTS_LINE = re.compile(r"^results: (\S+)\s*$", re.M)


@dataclass
class Step:
    command: str
    alongside: bool = False  # typed in a second terminal while the previous command runs


@dataclass
class Done:
    step: Step
    returncode: int
    output: str  # stdout and stderr together, as the student's terminal shows them


def guide_text() -> str:
    return GUIDE.read_text()


def exercises(text: str) -> dict[int, list[Step]]:
    """The commands of the "All the commands" block, by exercise number, in order."""
    block = re.search(r"^## All the commands\n.*?^```sh\n(.*?)^```", text, re.M | re.S)
    assert block, f"{GUIDE}: no ```sh block under '## All the commands'"
    found: dict[int, list[Step]] = {}
    current: list[Step] | None = None
    alongside = False
    for line in block.group(1).replace("\\\n", " ").splitlines():
        line = line.strip()
        marker = MARKER.match(line)
        if marker:
            current, alongside = found.setdefault(int(marker.group(1)), []), False
        elif line.startswith("#"):
            alongside = alongside or ALONGSIDE in line
        elif line:
            assert current is not None, f"{GUIDE}: command before the first '# exercise N': {line}"
            current.append(Step(line, alongside))
    return found


def sections(text: str) -> dict[int, str]:
    """Each '## Exercise N: ...' section's text, by number."""
    parts = re.split(r"^## Exercise (\d+):", text, flags=re.M)
    return {int(number): body for number, body in zip(parts[1::2], parts[2::2], strict=True)}


def as_typed(command: str) -> str:
    """The command as a root user runs it: `sudo` left out only where it is not installed."""
    if shutil.which("sudo") is not None:
        return command
    return re.sub(r"(^|[;&|(]\s*)sudo\s+", r"\1", command)


def needs_terminal(command: str) -> bool:
    return bool(re.search(r"\bmake demo\b|(-m experiments|sdn-ha) demo\b", command))


def argv(command: str) -> list[str]:
    command = as_typed(command)
    if needs_terminal(command):
        # `script` gives the command a terminal of its own. Given no terminal to copy the size
        # from, it makes one of 0 x 0, which curses cannot draw in: set a real size first.
        return ["script", "-qec", f"stty rows 50 cols 160 && {command}", "/dev/null"]
    return ["bash", "-c", command]


def environment() -> dict[str, str]:
    # A student's terminal can draw; CI's often says TERM=dumb (or nothing), which the demo refuses.
    term = os.environ.get("TERM", "")
    return {**os.environ, "SHELL": "/bin/bash", "TERM": term if term not in ("", "dumb") else "xterm"}


def run(step: Step) -> Done:
    result = subprocess.run(argv(step.command), cwd=ROOT, env=environment(), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            errors="replace", timeout=RUN_TIMEOUT_S)
    return Done(step, result.returncode, result.stdout)


def loaded_runs() -> set[Path]:
    """The runs under results/lab/ whose load has started (their experiment log says so)."""
    started = set()
    for log in LAB.rglob("experiment-events.jsonl") if LAB.is_dir() else []:
        if '"load_started"' in log.read_text(errors="replace"):
            started.add(log.parent)
    return started


def run_with_second_terminal(step: Step, alongside: list[Step]) -> list[Done]:
    """Run `step`; once its testbed carries load, run `alongside` as if typed in a second terminal."""
    before = loaded_runs()
    process = subprocess.Popen(argv(step.command), cwd=ROOT, env=environment(), stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               errors="replace")
    try:
        deadline = time.monotonic() + 120
        while not loaded_runs() - before:
            assert process.poll() is None, f"`{step.command}` ended before its load started"
            assert time.monotonic() < deadline, f"`{step.command}`: no load started within 120 s"
            time.sleep(0.2)
        meanwhile = [run(other) for other in alongside]
        output, _ = process.communicate(timeout=RUN_TIMEOUT_S)
    except BaseException:
        process.kill()  # `script` is ours; the demo under it stops cleanly on the hang-up
        process.communicate()
        raise
    return [Done(step, process.returncode, output), *meanwhile]


def run_exercise(steps: list[Step]) -> list[Done]:
    done: list[Done] = []
    index = 0
    while index < len(steps):
        step = steps[index]
        alongside = []
        while index + 1 + len(alongside) < len(steps) and steps[index + 1 + len(alongside)].alongside:
            alongside.append(steps[index + 1 + len(alongside)])
        if alongside:
            done += run_with_second_terminal(step, alongside)
        else:
            done.append(run(step))
        index += 1 + len(alongside)
    return done


# -- what each exercise says will appear ----------------------------------------------------


def run_dirs(done: list[Done]) -> list[Path]:
    """The folder of every run (or demo) among `done`, from its `results:` line."""
    return [Path(path) for d in done for path in RESULTS_LINE.findall(d.output.replace("\r", ""))]


def summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def output_of(done: list[Done], pattern: str) -> str:
    """The output of the one command of `done` that `pattern` finds."""
    (found,) = [d.output for d in done if re.search(pattern, d.step.command)]
    return found


def events(run_dir: Path) -> list[dict]:
    lines = (run_dir / "controller-events.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def check_every_command(number: int, done: list[Done]) -> None:
    for d in done:
        where = f"exercise {number}: `{d.step.command}`"
        assert d.returncode == 0, f"{where} exited {d.returncode}:\n{d.output[-3000:]}"
        runs = re.search(r"\bmake (run|demo)\b|(-m experiments|sdn-ha) (run|demo)\b", d.step.command)
        if runs:
            (folder,) = run_dirs([d]) or [None]
            assert folder is not None, f"{where}: no 'results:' line in:\n{d.output[-2000:]}"
            assert folder.is_relative_to(LAB), f"{where}: results in {folder}, not under {LAB}"
            assert (folder / "summary.json").exists() and (folder / "report.md").exists(), where
        compare = re.search(r"(?:-m experiments|sdn-ha) compare .* --out (\S+)", d.step.command)
        if compare:
            table = Path(ROOT) / compare.group(1)
            assert table.exists() and table.with_suffix(".csv").exists(), f"{where}: no {table} (.csv)"
        report = re.search(r"(?:-m experiments|sdn-ha) report (\S+)", d.step.command)
        if report:
            assert "report: " in d.output, f"{where}: {d.output[-2000:]}"


def check_1(done: list[Done], section: str) -> None:
    (run_dir,) = run_dirs(done)
    result = summary(run_dir)
    # The prose asks how many of the run's requests fail: the number it names is the run's.
    assert f"{result['requests_total']:,} requests" in section, result["requests_total"]
    assert result["requests_failed"] < result["requests_total"] / 10
    assert result["served_by_before"].keys() == {"primary"}
    assert "secondary" in result["served_by_after"]
    assert "primary-crash" in output_of(done, r"sdn-ha list$")
    table = output_of(done, r"^cat ")
    for kind in ("fault", "port_status", "server_down", "vip_moved", "flows_installed"):
        assert f",{kind}," in table, f"events.csv has no {kind} row"


def check_2(done: list[Done], section: str) -> None:
    link_down, web_crash, probes_only = run_dirs(done)
    assert summary(link_down)["scenario"] == "link-down" and summary(web_crash)["scenario"] == "web-crash"
    # The link going down is the switch's port event (tests/integration/test_scenarios.py leaves
    # this scenario to this exercise): one move, within a second, at once.
    down = [e for e in events(link_down) if e["kind"] == "server_down"]
    assert down and "switch port went down" in down[0]["reason"], down
    assert [e["server"] for e in events(link_down) if e["kind"] == "vip_moved"] == ["secondary"]
    assert 0 < summary(link_down)["failover_gap_ms"] < 1000 and summary(link_down)["availability_pct"] > 95
    for run_dir in (link_down, web_crash, probes_only):
        assert "secondary" in summary(run_dir)["served_by_after"], run_dir
    probe = json.loads((probes_only / "config.json").read_text())["probe"]
    assert (probe["passive"], probe["agent"], probe["recheck"]) == (False, False, False), probe
    # As set up, a word and its confirming probe; with the probes alone, `fall` of them.
    down = [e for e in events(web_crash) if e["kind"] == "server_down"]
    assert down and "a probe confirmed" in down[0]["reason"], down
    down = [e for e in events(probes_only) if e["kind"] == "server_down"]
    assert down and "2 probes in a row failed" in down[0]["reason"], down
    table = (LAB / "ex2-compare.md").read_text()
    for row in ("detection (ms)", "failover gap (ms)", "failed"):
        assert row in table, f"ex2-compare.md has no row {row!r}"


def check_3(done: list[Done], section: str) -> None:
    (run_dir,) = run_dirs(done)
    probe = json.loads((run_dir / "config.json").read_text())["probe"]
    # The sed line really changed the copy (of the probes-only config), and the run used it.
    assert (probe["interval_s"], probe["fall"]) == (0.1, 5), probe
    assert (probe["passive"], probe["recheck"]) == (False, False), probe
    detection = summary(run_dir)["detection_ms"]
    assert 320 <= detection <= 800, f"detection {detection} ms; the guide predicts 400 to 500"


def check_4(done: list[Done], section: str) -> None:
    (run_dir,) = run_dirs(done)
    failures = output_of(done, r"^awk ")
    assert re.search(r"^\d+ \S+ 503 primary", failures, re.M), failures
    assert "secondary" in summary(run_dir)["served_by_after"]


def check_5(done: list[Done], section: str) -> None:
    (run_dir,) = run_dirs(done)
    assert summary(run_dir)["requests_failed"] == 0  # "0 is the correct answer"
    lines = output_of(done, r"^awk ")
    assert lines.count(",controller_started,") == 2 and ",vip_adopted," in lines, lines
    assert ",vip_moved," not in lines and lines.count(",vip_installed,") == 1, lines


def check_6(done: list[Done], section: str) -> None:
    trials = int(re.search(r"--trials (\d+)", done[0].step.command).group(1))
    assert f"trial k/{trials} done" in section
    runs = [d for d in done if RESULTS_LINE.search(d.output)]
    for d, run_dir in zip(runs, run_dirs(runs), strict=True):
        assert f"trial {trials}/{trials} done: gap" in d.output
        folders = sorted(p.name for p in run_dir.glob("trial-*"))
        assert folders == [f"trial-{k:02d}" for k in range(1, trials + 1)], folders
        assert (run_dir / "failover_gap_cdf.png").exists()


def check_7(done: list[Done], section: str) -> None:
    (run_dir,) = run_dirs(done)
    for trial in sorted(run_dir.glob("trial-*")):
        assert summary(trial)["acked_writes"] > 0, trial
        assert list(trial.glob("primary/mariadb/binlog.*")), f"{trial}: no binary logs"


def check_8(done: list[Done], section: str) -> None:
    (run_dir,) = run_dirs(done)
    assert summary(run_dir)["scenario"] == "demo" and (run_dir / "served_by.png").exists()
    assert "Served by " in output_of(done, r"sdn-ha exec .* client curl ")
    count = output_of(done, r"sdn-ha exec .* secondary mariadb ")
    assert re.search(r"^\d+\s*$", count, re.M), count
    moves = [(e["server"], e["reason"]) for e in events(run_dir) if e["kind"] == "vip_moved"]
    # The lecture's story: the failover at 5 s, and the failback at 20 s is done, not refused.
    assert [server for server, _ in moves] == ["secondary", "primary"], moves
    assert "failback requested" in moves[1][1], moves


def check_9(done: list[Done], section: str) -> None:
    asynchronous, semi_sync, patient = (summary(run_dir) for run_dir in run_dirs(done))
    assert [s["replication"]["mode"] for s in (asynchronous, semi_sync, patient)] == [
        "async", "semi-sync", "semi-sync"]
    assert patient["replication"]["timeout_ms"] == 5000  # the sed line changed the copy
    # The lesson: a short semi-sync time-out falls back and loses acknowledged writes like async;
    # a commit that waits longer than the partition loses none (the client gave up instead).
    assert asynchronous["acked_writes_lost"] > 0 and semi_sync["acked_writes_lost"] > 0
    # Under async, a second of writes the primary acknowledged alone, all lost and all diverged
    # (tests/integration/test_consistency.py leaves this run to this exercise).
    assert asynchronous["acked_writes_lost"] > 20, asynchronous
    assert asynchronous["diverged_transactions"]["primary"] >= asynchronous["acked_writes_lost"]
    assert asynchronous["db_consistent"] is False and "replication_error" not in asynchronous
    assert semi_sync["semi_sync_fell_back"] >= 1
    assert patient["acked_writes_lost"] == 0, patient
    assert patient["unknown_writes"] + patient["failed_writes"] > 0, patient
    # What waited for an acknowledgement when the primary died is rolled back when it restarts
    # (and what the secondary had of it comes back to it): the databases end the same.
    assert patient["diverged_transactions"] == {"primary": 0}, patient
    assert patient["db_consistent"] is True, patient
    patient_dir = run_dirs(done)[2]
    assert "Successfully truncated binlog" in (patient_dir / "logs/mariadb-primary.log").read_text()


def check_10(done: list[Done], section: str) -> None:
    vrrp, proxy = run_dirs(done)
    for run_dir, mechanism in ((vrrp, "vrrp tuned"), (proxy, "proxy tuned")):
        result = summary(run_dir)
        assert result["mechanism"] == mechanism and "secondary" in result["served_by_after"], run_dir
        assert result["acked_writes_lost"] == 0 and result["db_consistent"] is True, run_dir
        # The follower moved the VIP once and made the databases follow (the web-crash cells of
        # tests/integration/test_mechanisms.py, which leaves them to this exercise).
        follower = [(e["kind"], e.get("server")) for e in events(run_dir) if e.get("source") == "follower"]
        assert [p for p in follower if p[0] in ("vip_installed", "vip_moved")] == [
            ("vip_installed", "primary"), ("vip_moved", "secondary")], follower
        assert ("db_writable", "secondary") in follower, follower
    follower = [e["kind"] for e in events(vrrp)]
    assert "vrrp_state" in follower and "vip_moved" in follower, follower
    table = (LAB / "ex10-compare.md").read_text()
    for label in ("sdn", "vrrp tuned", "proxy tuned"):
        assert label in table, f"ex10-compare.md has no column of {label}"


def check_11(done: list[Done], section: str) -> None:
    with_group, controller_only = run_dirs(done)
    stages = {}
    for run_dir, switch_failover in ((with_group, True), (controller_only, False)):
        config = json.loads((run_dir / "config.json").read_text())
        assert config["failover"]["switch_failover"] is switch_failover, run_dir  # the sed line worked
        result = summary(run_dir)
        assert result["active_at_end"] == "secondary", run_dir
        # Asynchronous replication under load can lose a write the primary acknowledged as
        # its link went down: each one lost must be a transaction the cut-off primary committed
        # and never replicated (it shows as diverged), never a write that vanished.
        assert result["acked_writes_lost"] <= sum(result["diverged_transactions"].values()), result
        assert result["vip_moves_before_fault"] == 0, f"a false failover before the cut: {run_dir}"
        assert result["vip_moves"] == 1, f"the VIP moved {result['vip_moves']} times, not once: {run_dir}"
        stages[switch_failover] = result["failover_stages_ms"]
        assert stages[switch_failover]["switch reported"] is not None, stages
        # The cut is the kernel's before it is the switch's.
        cut = stages[switch_failover]
        assert 0 <= cut["kernel saw it"] <= cut["switch reported"], stages
    # Without the group no request reaches the secondary before the controller's flow does.
    assert stages[False]["first request to new"] >= stages[False]["flow sent"], stages
    assert (LAB / "ex11-compare.md").is_file()


def check_12(done: list[Done], section: str) -> None:
    flap, chaos = run_dirs(done)
    assert summary(flap)["both_writable_ms"] == 0 and summary(flap)["vip_moves"] == 1, summary(flap)
    # One move, to the secondary, however often the link comes back (test_scenarios.py leaves it here).
    assert [e["server"] for e in events(flap) if e["kind"] == "vip_moved"] == ["secondary"]
    with open(flap / "requests.csv") as f:
        after = {r["served_by"] for r in csv.DictReader(f)
                 if float(r["sent_at"]) > summary(flap)["fault_at"] + 1.0 and r["status"].startswith("2")}
    assert after == {"secondary"}, after  # a second after the first cut, and from then on
    result = summary(chaos)
    assert result["passed"] is True and result["violations"] == [], result["violations"]
    assert result["faults_injected"] >= 3, "too few faults for 40 s: the nemesis is stuck"
    assert all(f["whole_again"] for f in result["faults"]), result["faults"]
    assert all(count > 0 for count in result["checked"].values()), result["checked"]
    assert result["both_writable_ms"] == 0 and result["acked_writes_lost"] == 0
    assert result["db_consistent"] is True
    page = output_of(done, r"^cat .*chaos\.md")
    assert "**Verdict: passed**" in page and "| 1 |" in page, page


def check_13(done: list[Done], section: str) -> None:
    ports = output_of(done, r"sdn-ha topology")
    assert "  edge2 (dpid 2): port 1 primary 10.0.0.11, port 2 cable to core1 port 2" in ports, ports
    assert (LAB / "ex13-topology.png").stat().st_size > 10_000
    with_groups, controller_only = run_dirs(done)
    for run_dir, switch_failover in ((with_groups, True), (controller_only, False)):
        config = json.loads((run_dir / "config.json").read_text())
        assert config["network"]["topology"] == "two-tier", run_dir
        assert config["failover"]["switch_failover"] is switch_failover, run_dir  # the sed line worked
        result = summary(run_dir)
        assert result["vip_moves"] == 0 and result["vip_moves_before_fault"] == 0, run_dir
        assert result["acked_writes_lost"] == 0 and result["interruption_ms"] is not None, result
        # Rerouted, not failed over: the primary served all along (tests/integration/test_fabric.py
        # leaves this case to this exercise).
        assert set(result["served_by_before"]) == set(result["served_by_after"]) == {"primary"}, result
        assert result["db_consistent"] is True and result["availability_pct"] > 99, result
        assert {e["link"] for e in events(run_dir) if e["kind"] == "cable_verified"} == {
            f"edge{i}-core{j}" for i in (1, 2, 3) for j in (1, 2)}, run_dir
        cut = [e for e in events(run_dir) if e["kind"] == "link_status"]
        assert cut and cut[0]["link"] == "edge2-core1" and cut[0]["up"] is False, cut
    assert (LAB / "ex13-compare.md").is_file()


def check_14(done: list[Done], section: str) -> None:
    no_passive, no_agent, hang, no_hang_rule = run_dirs(done)
    for run_dir, key, value in ((no_passive, "passive", False), (no_agent, "agent", False),
                                (hang, "hang_fall", 3), (no_hang_rule, "hang_fall", 0)):
        probe = json.loads((run_dir / "config.json").read_text())["probe"]
        assert probe[key] == value, (run_dir, probe)  # the sed line worked, or the default is as said
        assert summary(run_dir)["vip_moves"] == 1 and summary(run_dir)["acked_writes_lost"] == 0, run_dir

    def decided(run_dir: Path) -> str:
        (down,) = [e for e in events(run_dir) if e["kind"] == "server_down" and e["server"] == "primary"]
        return down["reason"]

    # Without the switch's copies no reset is a word: the scheduled probe, checked again at once.
    assert not any(e["kind"] == "suspected" for e in events(no_passive)), no_passive
    assert "a probe confirmed a failed probe" in decided(no_passive), decided(no_passive)
    gone = summary(no_passive)["failover_stages_ms"]
    assert 0 < gone["kernel saw it"] <= gone["controller decided"], gone
    assert "lost its database" not in decided(no_agent), decided(no_agent)
    # The hang path taken as set up (tests/integration/test_scenarios.py checks it too), and
    # timeout_fall's run without it: from the recorded decision and stages.
    assert "hung" in decided(hang) and "20 probes in a row" in decided(no_hang_rule), (decided(hang),
                                                                                      decided(no_hang_rule))
    stages = [summary(d)["failover_stages_ms"] for d in (hang, no_hang_rule)]
    assert stages[0]["controller decided"] < stages[1]["controller decided"], stages
    with open(hang / "probes.csv") as f:
        late = [r for r in csv.DictReader(f) if r["server"] == "primary" and r["detail"] == "late"
                and 0.1 < float(r["time"]) - summary(hang)["fault_at"] < HANG_S]
    assert late == [], late  # as the guide says: a frozen server never answers late (until it thaws)
    table = (LAB / "ex14-compare.md").read_text()
    for row in ("detection (ms)", "failover gap (ms)", "failed"):
        assert row in table, f"ex14-compare.md has no row {row!r}"


CHECKS = {1: check_1, 2: check_2, 3: check_3, 4: check_4, 5: check_5, 6: check_6, 7: check_7, 8: check_8,
          9: check_9, 10: check_10, 11: check_11, 12: check_12, 13: check_13,
          14: check_14}


def test_the_guide_lists_each_exercise_once_with_what_to_run_predict_and_look_at():
    """The block and the sections agree: every command a section shows is in the block, in order."""
    text = guide_text()
    found, shown = exercises(text), sections(text)
    assert list(found) == list(range(1, len(found) + 1)) == list(shown), (list(found), list(shown))
    assert set(CHECKS) == set(found), "each exercise needs its check in this test"
    for number, body in shown.items():
        for heading in ("**Run**", "**Predict", "**Look at**"):
            assert heading in body, f"exercise {number} has no {heading}"
        indented = [line[4:] for line in body.splitlines() if line.startswith("    ") and line.strip()]
        in_block = [step.command for step in found[number]]
        assert indented, f"exercise {number} shows no command"
        assert all(command in in_block for command in indented), (number, indented, in_block)
        assert indented == sorted(indented, key=in_block.index), f"exercise {number}: not in order"


def test_the_lecture_script_plays_and_ends_by_itself():
    """docs/lab-demo.txt is a valid demo script whose last command is `quit`."""
    from experiments.runs.demo import parse_script

    command = next(s.command for s in exercises(guide_text())[8] if needs_terminal(s.command))
    script = Path(ROOT) / re.search(r"SCRIPT=(\S+)", command).group(1)
    lines = parse_script(script.read_text(), ["primary", "secondary"], str(script))
    assert lines[-1].command.verb == "quit"
    assert [line.command.text for line in lines[:1]] == ["fail primary"]


def test_every_exercise_runs_as_the_guide_says():
    """A newcomer pastes the commands of every exercise in order: each exits 0 and shows what
    the guide says it shows; the whole lab leaves no testbed behind."""
    text = guide_text()
    shown = sections(text)
    shutil.rmtree(LAB, ignore_errors=True)
    took = {}
    for number, steps in exercises(text).items():
        start = time.monotonic()
        done = run_exercise(steps)
        took[number] = round(time.monotonic() - start)
        check_every_command(number, done)
        CHECKS[number](done, shown[number])
    print(f"seconds per exercise: {took}")
    assert leftovers() == []
