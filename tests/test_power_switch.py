"""The testbed's power switch (services/power_switch.py): asked over its socket, it powers a
known server off and says so; anything else is refused with a reason, and the controller's
request fails loud when the switch refuses or is not there."""

from __future__ import annotations

import pytest

from services.power_switch import PowerSwitch, request_power_off


@pytest.fixture
def switch(tmp_path):
    powered_off: list[str] = []

    def power_off(server: str) -> str | None:
        if server == "secondary":
            return "its processes are not recorded"
        powered_off.append(server)
        return None

    power = PowerSwitch(tmp_path / "power.sock", {"primary", "secondary"}, power_off)
    power.start()
    try:
        yield power, powered_off
    finally:
        power.stop()


def test_a_known_server_is_powered_off(switch):
    power, powered_off = switch
    request_power_off(power.path, "primary", timeout_s=2)
    assert powered_off == ["primary"]
    assert oct(power.path.stat().st_mode & 0o777) == "0o600"  # nobody but root may cut power


@pytest.mark.parametrize(("server", "says"), [
    ("tertiary", "no server 'tertiary'; the servers are primary, secondary"),
    ("secondary", "its processes are not recorded"),
])
def test_a_refusal_is_an_error_with_its_reason(switch, server, says):
    power, powered_off = switch
    with pytest.raises(OSError, match=says):
        request_power_off(power.path, server, timeout_s=2)
    assert powered_off == []


@pytest.mark.parametrize(("request_line", "error"), [
    (b"not json\n", 'send {"power_off": SERVER}'),
    (b'["primary"]\n', "no server None"),
])
def test_a_malformed_request_is_refused(switch, request_line, error):
    power, powered_off = switch
    answer = power.answer(request_line)
    assert answer["ok"] is False and error in answer["error"]
    assert powered_off == []


def test_no_power_switch_is_an_error_not_a_silence(tmp_path):
    with pytest.raises(OSError):
        request_power_off(tmp_path / "nobody.sock", "primary", timeout_s=1)
