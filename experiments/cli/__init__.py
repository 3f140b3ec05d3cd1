"""The commands of `python -m experiments`, one module per group, each option beside its body.

    run.py      `list` and `run`: the scenarios, and a run of one (or of compare-replication)
    bench.py    `bench`: the failover benchmark and the load generator's
    chaos.py    `chaos`: the nemesis, random faults under load with invariants checked
    demo.py     `demo`: the live demo a teacher drives
    exec.py     `exec`: a command inside a host of the running testbed
    topology.py `topology`: the network a config builds, in words and as a picture
    results.py  `report` and `compare`: reports from the files a run wrote
    clean.py    `clean`: what killed runs left
    common.py   what they share: UsageError, the parser, the checks before a run, the run itself

Each group has `add_commands(commands)`, which adds its parsers with a `handler`;
experiments/__main__.py builds the top parser from the groups and dispatches.
"""
