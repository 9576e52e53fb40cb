"""The reports in a real browser: Debian's headless Chromium opens the finance summary and an invoice,
every console error or uncaught exception fails the test, a screenshot is saved and must show something,
and `chargeback invoice --pdf` prints valid A4 PDFs.

Chromium is driven over the DevTools protocol on 127.0.0.1 (websocket-client, which the Kubernetes
client already brings). Screenshots go to $REPORT_SCREENSHOTS when set, else the test's tmp directory.
A missing chromium fails the tests with the package to install: skipping would hide that no browser
ever opened the reports.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import re
import struct
import subprocess
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import websocket
from typer.testing import CliRunner

from chargeback.cli import app
from chargeback.errors import PdfError
from chargeback.outputs.pdf import OFFLINE_FLAGS, PACKAGE_HINT, find_chromium, print_pdfs
from chargeback.outputs.writer import write_reports
from chargeback.rate.result import charge
from pool_catalog import load_catalog
from tests.chargeback.outputs.test_outputs import OCT, month_rows
from tests.support.catalog_edit import EXAMPLE_CATALOG
from tests.support.prometheus import invoice_args
from tests.support.usage_frames import usage_frame

pytestmark = pytest.mark.browser
STARTUP_SECONDS = 20
EVENT_SECONDS = 15


class DevTools:
    """One headless Chromium and one page, driven over the DevTools protocol."""

    def __init__(self, profile: Path) -> None:
        try:
            chromium = find_chromium()
        except PdfError as e:
            pytest.fail(str(e))
        self.process = subprocess.Popen(
            [
                chromium,
                *OFFLINE_FLAGS,
                f"--user-data-dir={profile}",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + STARTUP_SECONDS
        while not (port_file.is_file() and len(port_file.read_text().split()) == 2):
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.close()
                pytest.fail(f"chromium did not open its DevTools port within {STARTUP_SECONDS} s")
            time.sleep(0.05)
        port, path = port_file.read_text().split()
        self.socket = websocket.create_connection(f"ws://127.0.0.1:{port}{path}", timeout=EVENT_SECONDS)
        self.ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.call(f"{domain}.enable", session=True)
        self.call("Emulation.setDeviceMetricsOverride", session=True, width=1200, height=1000, deviceScaleFactor=1,
                  mobile=False)  # fmt: skip

    def call(self, method: str, *, session: bool = False, **params: Any) -> dict[str, Any]:
        """Send a command and wait for its answer, keeping the events that arrive meanwhile."""
        message_id = next(self.ids)
        message = {"id": message_id, "method": method, "params": params}
        if session:
            message["sessionId"] = self.session
        self.socket.send(json.dumps(message))
        while True:
            answer = json.loads(self.socket.recv())
            if answer.get("id") == message_id:
                if "error" in answer:
                    raise AssertionError(f"{method}: {answer['error']}")
                return answer["result"]
            self.events.append(answer)

    def wait_for(self, method: str) -> None:
        while not any(e.get("method") == method for e in self.events):
            self.events.append(json.loads(self.socket.recv()))

    def open(self, url: str) -> list[str]:
        """Load `url`; the console errors, uncaught exceptions and failed loads it caused."""
        self.events.clear()
        self.call("Page.navigate", session=True, url=url)
        self.wait_for("Page.loadEventFired")
        self.call(
            "Runtime.evaluate", session=True, expression="new Promise(r => setTimeout(r, 100))", awaitPromise=True
        )  # fmt: skip  (late console calls arrive before this answers)
        return [problem for event in self.events if (problem := _problem(event))]

    def evaluate(self, expression: str) -> Any:
        return self.call("Runtime.evaluate", session=True, expression=expression, returnByValue=True)["result"].get(
            "value"
        )

    def screenshot(self, path: Path) -> bytes:
        data = self.call("Page.captureScreenshot", session=True, format="png", captureBeyondViewport=True)["data"]
        png = base64.b64decode(data)
        path.write_bytes(png)
        return png

    def close(self) -> None:
        if hasattr(self, "socket"):
            self.socket.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _problem(event: dict[str, Any]) -> str | None:
    method, params = event.get("method"), event.get("params", {})
    if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
        return (
            "console."
            + params["type"]
            + ": "
            + " ".join(str(a.get("value", a.get("description"))) for a in params["args"])
        )
    if method == "Runtime.exceptionThrown":
        details = params["exceptionDetails"]
        return "uncaught: " + details.get("exception", {}).get("description", details.get("text", ""))
    if method == "Log.entryAdded" and params["entry"]["level"] == "error":
        return f"{params['entry']['source']}: {params['entry']['text']}"
    return None


def png_is_blank(png: bytes) -> bool:
    """True when the image is one flat colour: its decompressed rows then hold almost no distinct bytes
    (a page with text, rules and charts holds dozens, from antialiasing alone)."""
    assert png.startswith(b"\x89PNG\r\n\x1a\n"), "not a PNG"
    data, offset = b"", 8
    while offset < len(png):
        (length,) = struct.unpack(">I", png[offset : offset + 4])
        kind = png[offset + 4 : offset + 8]
        if kind == b"IDAT":
            data += png[offset + 8 : offset + 8 + length]
        offset += 12 + length
    return len(set(zlib.decompress(data))) < 16


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevTools]:
    tools = DevTools(tmp_path_factory.mktemp("chromium-profile"))
    yield tools
    tools.close()


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("reports") / "2026-10"
    write_reports(charge(usage_frame(month_rows()), load_catalog(EXAMPLE_CATALOG), OCT), out)
    return out


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = Path(os.environ.get("REPORT_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def test_console_errors_are_caught(browser: DevTools, tmp_path: Path, screenshots: Path) -> None:
    """The check itself: a page with a console error, an exception and a missing image fails it,
    and a blank page's screenshot counts as blank."""
    page = tmp_path / "broken.html"
    page.write_text(
        '<!DOCTYPE html><img src="missing.png"><script>console.error("boom"); null.property;</script>', encoding="utf-8"
    )
    problems = browser.open(page.as_uri())
    assert any(p == "console.error: boom" for p in problems), problems
    assert any(p.startswith("uncaught: TypeError") for p in problems), problems
    assert any("missing.png" in p or "ERR_FILE_NOT_FOUND" in p for p in problems), problems
    blank = tmp_path / "blank.html"
    blank.write_text("<!DOCTYPE html><title>blank</title>", encoding="utf-8")
    assert browser.open(blank.as_uri()) == []
    assert png_is_blank(browser.screenshot(screenshots / "blank.png"))


@pytest.mark.parametrize("page", ["finance-summary.html", "invoices/data-insight.html"])
def test_report_opens_without_errors_and_shows_its_charts(
    browser: DevTools, reports: Path, screenshots: Path, page: str
) -> None:
    assert browser.open((reports / page).as_uri()) == []
    widths = browser.evaluate("[...document.querySelectorAll('svg.chart')].map(s => s.getBoundingClientRect().width)")
    assert widths and all(width > 300 for width in widths), widths
    assert browser.evaluate("document.fonts.check('12px \"WenQuanYi Micro Hei\"', '数据洞察')") is True
    png = browser.screenshot(screenshots / (Path(page).stem + ".png"))
    assert not png_is_blank(png)
    (width, height) = struct.unpack(">II", png[16:24])
    assert width > 1100 and height > 1000, "the whole page (less a scrollbar), beyond the first screen"


def pdf_pages(pdf: Path) -> int:
    content = pdf.read_bytes()
    assert content.startswith(b"%PDF-") and content.rstrip().endswith(b"%%EOF"), pdf
    assert re.search(rb"/MediaBox \[0 0 59[45]\.\d+ 84[12]\.\d+\]", content), f"{pdf} is not A4"
    return len(re.findall(rb"/Type /Page\b", content))


def test_invoice_pdf_prints_every_report(priced_prometheus, tmp_path: Path) -> None:
    out = tmp_path / "2026-10"
    result = CliRunner().invoke(app, invoice_args(priced_prometheus.url, out, "--pdf"))
    assert result.exit_code == 0, result.output
    html = sorted(p.relative_to(out) for p in out.rglob("*.html"))
    pdfs = sorted(p.relative_to(out) for p in out.rglob("*.pdf"))
    assert [p.with_suffix(".pdf") for p in html] == pdfs and len(pdfs) >= 2
    assert all(pdf_pages(out / p) >= 1 for p in pdfs)
    assert pdf_pages(out / "invoices/data-insight.pdf") >= 2, "sections start on new pages"


def test_missing_chromium_names_the_package_and_writes_nothing(tmp_path: Path) -> None:
    chargeback = charge(usage_frame(month_rows()), load_catalog(EXAMPLE_CATALOG), OCT)
    with pytest.raises(PdfError, match=re.escape(PACKAGE_HINT)):
        write_reports(chargeback, tmp_path / "out", pdf=True, chromium="no-such-chromium")
    assert not (tmp_path / "out").exists()
    with pytest.raises(PdfError, match="not found on PATH"):
        print_pdfs([(tmp_path / "a.html", tmp_path / "a.pdf")], chromium="no-such-chromium")


def test_invoice_previous_flag_errors_cleanly(priced_prometheus, tmp_path: Path) -> None:
    help_text = CliRunner().invoke(app, ["invoice", "--help"], env={"COLUMNS": "200"}).output
    assert "--pdf" in help_text and "--previous" in help_text
    out = tmp_path / "2026-10"
    result = CliRunner().invoke(app, invoice_args(priced_prometheus.url, out, "--previous", str(tmp_path / "none")))
    assert result.exit_code == 2, result.output
    assert "no invoices/*.json there" in result.output and "Traceback" not in result.output
    assert not out.exists()
