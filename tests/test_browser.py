"""The HTML report in a real browser: headless Chromium, no network, renders the table and decodes every image."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from normreg.render.html import render_html
from normreg.report.file import report_from_json

# Fetches nothing: no background services, every host name unresolvable, any proxy use refused.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
         "--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=127.0.0.1:9", "--hide-scrollbars"]

PROBE = """<script>
window.addEventListener("load", () => {
  const images = [...document.images].map(i => ({complete: i.complete, width: i.naturalWidth,
                                                  height: i.naturalHeight, alt: i.alt}));
  const rows = document.querySelectorAll("table.verdicts tr").length;
  const probe = document.createElement("pre");
  probe.id = "probe";
  probe.textContent = JSON.stringify({images, rows, title: document.title});
  document.body.appendChild(probe);
});
</script>"""


def chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("Chromium not found: install Debian's package with 'apt-get install -y chromium'")


def browse(tmp_path: Path, page: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [chromium(), *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *args, page.as_uri()]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def png_size(data: bytes) -> tuple[int, int]:
    import struct

    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


@pytest.fixture(scope="module")
def html_file(report_json, tmp_path_factory) -> tuple[Path, int]:
    page = render_html(report_from_json(report_json).report)
    path = tmp_path_factory.mktemp("html") / "report.html"
    path.write_text(page, encoding="utf-8")
    return path, len(report_json["comparisons"])


def test_table_and_images_in_the_dom(html_file, tmp_path):
    page, n_checks = html_file
    probe = tmp_path / "probe.html"
    probe.write_text(page.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"), encoding="utf-8")
    proc = browse(tmp_path, probe, "--dump-dom", "--virtual-time-budget=10000")
    assert proc.returncode == 0, proc.stderr[-2000:]
    match = re.search(r'<pre id="probe">(.*?)</pre>', proc.stdout, flags=re.S)
    assert match, "the probe did not run: " + proc.stdout[-1000:]
    result = json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert result["rows"] == n_checks + 1  # header and one row per comparison
    assert result["title"] == "normreg report: error"
    assert len(result["images"]) == 4
    for img in result["images"]:
        assert img["complete"] and img["width"] > 200 and img["height"] > 150, img


def test_screenshot_is_not_blank(html_file, tmp_path):
    from PIL import Image

    page, _ = html_file
    shot = tmp_path / "shot.png"
    proc = browse(tmp_path, page, f"--screenshot={shot}", "--window-size=1280,2400")
    assert proc.returncode == 0 and shot.exists(), proc.stderr[-2000:]
    assert png_size(shot.read_bytes()) == (1280, 2400)
    with Image.open(shot) as im:
        rgb = im.convert("RGB").resize((320, 600))
        pixels = list(rgb.getdata())
    ink = sum(1 for p in pixels if min(p) < 200) / len(pixels)
    colours = len(set(pixels))
    reddish = sum(1 for r, g, b in pixels if r > 200 and g < 230 and b < 230 and r - b > 10)
    assert ink > 0.03, f"only {ink:.1%} of the page has ink"
    assert colours > 200, f"only {colours} colours: the figures did not render"
    assert reddish > 50, "the failing rows are not tinted"
