"""The HTML report in a real headless Chromium: no console errors, every plot rendered, not blank;
the REST and gRPC summaries fit one 1400 x 900 screen."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from fixtures.report_runs import make_run

from servecmp.report.build import build_report

# appended to a copy of the report: writes the rendered boxes of the summary into the DOM
MEASURE_JS = """<script>
window.addEventListener('load', () => {
  const box = (el) => el.getBoundingClientRect();
  const out = {viewport: [window.innerWidth, window.innerHeight],
               page_width: document.documentElement.scrollWidth, top: box(document.getElementById('summary')).top};
  for (const t of document.querySelectorAll('table[id^="summary-"]')) {
    out[t.id] = {right: box(t).right, bottom: box(t).bottom};
  }
  const pre = document.createElement('pre');
  pre.id = 'measured';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""

CHROMIUM = Path("/usr/bin/chromium")
PLOT_IDS = (
    "plot-latency-throughput",
    "plot-percentiles",
    "plot-distribution",
    "plot-overhead",
    "plot-resources",
)

pytestmark = [
    pytest.mark.usefixtures("test_registry"),  # server labels and baselines from test adapters
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason=f"{CHROMIUM} not installed (apt-get install chromium)"
    ),
]


def chromium(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    cmd = [
        str(CHROMIUM),
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--enable-logging=stderr",
        "--v=0",
        "--no-first-run",
        "--disable-extensions",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


def console_errors(stderr: str) -> list[str]:
    return [
        ln
        for ln in stderr.splitlines()
        if "Uncaught" in ln or "ERROR:CONSOLE" in ln or ("CONSOLE" in ln and "error" in ln.lower())
    ]


def non_white_fraction(png: Path) -> float:
    from PIL import Image

    img = Image.open(png).convert("RGB")
    small = img.resize((img.width // 4, img.height // 4))
    px = list(small.getdata())
    return sum(1 for r, g, b in px if min(r, g, b) < 235) / len(px)


def test_console_error_detection_works(tmp_path: Path) -> None:
    """Guard for the check below: a page with a JS error must be caught."""
    bad = tmp_path / "bad.html"
    bad.write_text("<html><body><script>undefinedFunction();</script></body></html>")
    res = chromium("--virtual-time-budget=2000", "--dump-dom", bad.as_uri())
    assert console_errors(res.stderr), res.stderr[-2000:]


def test_report_renders_in_chromium(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run-a")
    html = build_report(run).html
    out = tmp_path / "shots"
    out.mkdir()

    dom = chromium("--virtual-time-budget=10000", "--dump-dom", html.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert not console_errors(dom.stderr), console_errors(dom.stderr)
    text = dom.stdout
    # the answer first: the first table of the rendered page is the summary (REST)
    first = re.search(r"<table[^>]*>", text)
    assert first is not None and 'id="summary-rest"' in first.group(0), first
    assert text.index('id="summary-rest"') < text.index('id="plot-latency-throughput"')
    # every plot div holds plotly's rendered SVG (before the next plot div starts) WITH data:
    # drawn markers/bars, or a line through at least two points
    positions = sorted((text.index(f'id="{pid}"'), pid) for pid in PLOT_IDS)
    for i, (pos, pid) in enumerate(positions):
        end = positions[i + 1][0] if i + 1 < len(positions) else len(text)
        chunk = text[pos:end]
        assert 'class="main-svg"' in chunk, f"{pid}: no rendered plot"
        assert re.search(r'class="(trace|point|bars|scatterlayer)', chunk), (
            f"{pid}: no traces drawn"
        )
        points = len(re.findall(r'class="point"', chunk))
        lines = re.findall(r'class="js-line"[^>]*\sd="(M[^"]*L[^"]*)"', chunk) + re.findall(
            r'\sd="(M[^"]*L[^"]*)"[^>]*class="js-line"', chunk
        )
        assert points > 0 or lines, f"{pid}: a plot without data points"

    shot = out / "report.png"
    res = chromium(
        "--virtual-time-budget=10000",
        "--hide-scrollbars",
        f"--screenshot={shot}",
        "--window-size=1400,3000",
        html.as_uri(),
    )
    assert res.returncode == 0 and shot.is_file(), res.stderr[-2000:]
    assert not console_errors(res.stderr), console_errors(res.stderr)
    assert non_white_fraction(shot) > 0.03, "screenshot is (almost) blank"


def test_rest_and_grpc_summaries_fit_a_1400x900_screen(
    tmp_path: Path, test_registry_with_kserve: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three servers, KServe labelled like the real adapter (version and flavour): from the
    Summary heading down to the gRPC table, nothing wider or taller than the window."""
    from adapters_for_tests import KServeForTests

    monkeypatch.setattr(KServeForTests, "label", "KServe 0.21 (Python model server)")
    monkeypatch.setattr(KServeForTests, "short_label", "KServe", raising=False)
    html = build_report(make_run(tmp_path / "run-3", third_server=True)).html
    probe = tmp_path / "measure.html"
    probe.write_text(
        html.read_text(encoding="utf-8").replace("</body>", MEASURE_JS + "</body>"),
        encoding="utf-8",
    )
    res = chromium(
        "--window-size=1400,900",
        "--hide-scrollbars",
        "--virtual-time-budget=10000",
        "--dump-dom",
        probe.as_uri(),
    )
    assert res.returncode == 0, res.stderr[-2000:]
    found = re.search(r'<pre id="measured">(.*?)</pre>', res.stdout)
    assert found is not None, res.stderr[-2000:]
    m = json.loads(found.group(1))
    width, height = m["viewport"]
    assert width == 1400 and 0 < height <= 900, m
    assert "summary-rest" in m and "summary-grpc" in m, m
    assert m["page_width"] <= width, m  # no horizontal scrolling
    for table in ("summary-rest", "summary-grpc"):
        assert m[table]["right"] <= width, (table, m)
    used = m["summary-grpc"]["bottom"] - m["top"]
    assert used <= height, (
        f"REST + gRPC summaries take {used:.0f} px of a {height} px high window: {m}"
    )
