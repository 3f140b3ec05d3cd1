"""The word to the prober (services/prober_words.py): its rate limit, with the clock passed in."""

import json
import socket

import pytest

from services.prober_words import WordSender


@pytest.mark.parametrize("words, sent", [
    ([(0.0, "primary")], [True]),
    ([(0.0, "primary"), (0.01, "primary")], [True, False]),  # within the gap: one word is enough
    ([(0.0, "primary"), (0.02, "primary")], [True, True]),  # the gap has passed
    ([(0.0, "primary"), (0.001, "secondary")], [True, True]),  # a gap per server
    ([(5.0, "primary")], [True]),  # the first word is sent whatever the clock says
])
def test_a_sender_sends_at_most_one_word_per_server_per_gap(tmp_path, words, sent):
    path = tmp_path / "wake.sock"
    prober = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    prober.bind(str(path))
    prober.settimeout(0.2)
    now = [0.0]
    sender = WordSender(str(path), 0.02, clock=lambda: now[0])
    try:
        results = []
        for at, server in words:
            now[0] = at
            results.append(sender.send(server, "a reset from its web port"))
        received = [json.loads(prober.recv(512))["server"] for _ in range(sum(results))]
    finally:
        prober.close()
    assert results == sent
    assert received == [server for (_, server), ok in zip(words, sent, strict=True) if ok]


def test_a_word_nobody_listens_for_raises_for_the_caller_to_say_so(tmp_path):
    sender = WordSender(str(tmp_path / "nobody.sock"), 0.02)
    with pytest.raises(OSError):
        sender.send("primary", "a reset from its web port")
