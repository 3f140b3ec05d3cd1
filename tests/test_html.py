"""The report as one HTML page (experiments/results/html.py): the Markdown our reports use,
converted, with the pictures inside the page."""

from __future__ import annotations

import base64

import pytest

from experiments.results.html import markdown_to_html, write_html

PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQ"
                       "AAAABJRU5ErkJggg==")  # one pixel


@pytest.mark.parametrize(("markdown", "html"), [
    ("# Failover report: primary-crash", "<h1>Failover report: primary-crash</h1>"),
    ("## The figures", "<h2>The figures</h2>"),
    ("Scenario **primary-crash**, run `x`.",
     "<p>Scenario <strong>primary-crash</strong>, run <code>x</code>.</p>"),
    ("one line\nand the next", "<p>one line and the next</p>"),
    ("a < b & c", "<p>a &lt; b &amp; c</p>"),
    ("[the report over all trials](../report.md)",
     '<p><a href="../report.html">the report over all trials</a></p>'),
    ("| Figure | Value |\n|---|---|\n| Gap (ms) | 23.0 |",
     "<table>\n<tr><th>Figure</th><th>Value</th></tr>\n<tr><td>Gap (ms)</td><td>23.0</td></tr>\n</table>"),
    ("![Latency](missing.png)", "<p><em>(picture missing.png is missing)</em></p>"),
])
def test_the_markdown_of_our_reports_becomes_html(tmp_path, markdown, html):
    assert html in markdown_to_html(markdown, tmp_path)


def test_the_page_carries_its_pictures_and_sits_beside_the_markdown(tmp_path):
    (tmp_path / "latency.png").write_bytes(PNG)
    report = tmp_path / "report.md"
    report.write_text("# Report\n\n## Latency\n\n![Latency of each request](latency.png)\n")
    page = write_html(report)
    assert page == tmp_path / "report.html"
    text = page.read_text()
    assert "<title>Report</title>" in text
    assert f'src="data:image/png;base64,{base64.b64encode(PNG).decode()}"' in text
    assert "latency.png" not in text  # nothing outside the page is needed
