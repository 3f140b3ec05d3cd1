"""What every unit test shares: the machine's run registry is not theirs.

`python -m experiments clean` and a new run read /run/sdn-ha-testbed, where every real run
registers itself (experiments/testbed/registry.py). A unit test gets an empty registry of its
own, so that a run going on on the machine cannot change its answers, and it cannot leave an
entry there. Integration tests use the real one: they are real runs.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from experiments.testbed import registry


@pytest.fixture(autouse=True)
def own_registry(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                 monkeypatch: pytest.MonkeyPatch) -> Path:
    if "integration" in request.node.keywords:
        return registry.REGISTRY
    folder = tmp_path_factory.mktemp("registry")
    monkeypatch.setattr(registry, "REGISTRY", folder)
    return folder
