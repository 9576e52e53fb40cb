"""The portal in a real browser: Playwright for Python driving Debian's chromium (`executable_path`, no browser
download) against the portal under uvicorn on 127.0.0.1, on a ledger closed from a real Prometheus. The browser
stands where the authenticating proxy would (its headers name the person). Screenshots of each page go to the
test's temporary folder (printed with -s)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from infra.cli import app as pool_cli
from tests.support.portal import (
    FINANCE,
    OTHER_UNIT,
    PERIOD,
    PLATFORM,
    UNIT_MEMBER,
    IssuedLedger,
    as_person,
    portal_config,
    serve,
)
from tests.support.prometheus import ScenarioServer

playwright_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (make venv does)")

pytestmark = [pytest.mark.prometheus, pytest.mark.browser]
UNIT = "data-insight"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is missing: apt-get install chromium (make test installs it)", pytrace=False)
    with playwright_api.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("portal-screenshots")
    print(f"\nportal screenshots: {folder}")
    return folder


@pytest.fixture
def portal(tmp_path: Path, issued: IssuedLedger, priced_prometheus: ScenarioServer) -> Iterator[tuple[str, Path]]:
    config = portal_config(tmp_path, issued, priced_prometheus.url)
    with serve(config) as url:
        yield url, config.catalog


def page_as(browser, person: tuple[str, ...]):
    context = browser.new_context(extra_http_headers=as_person(*person), viewport={"width": 1200, "height": 900})
    return context.new_page()


def pool_request_cost(catalog: Path, cpu: str) -> str:
    """`pool request --json`'s monthly cost of the namespace the tests ask for, as the page prints it."""
    args = ["request", "--unit", UNIT, "--namespace", "di-reports", "--node-pool", "general", "--cpu", cpu]
    result = CliRunner().invoke(pool_cli, [*args, "--memory", "16Gi", "--catalog", str(catalog), "--json"])
    decision = json.loads(result.stdout[result.stdout.index("{") :])
    return f"{Decimal(decision['monthly_cost']):,} {decision['currency']}"


def test_a_unit_member_requests_watching_the_estimate_and_the_platform_approves(browser, portal, shots) -> None:
    url, catalog = portal
    unit_file = catalog / "business-units" / f"{UNIT}.yaml"
    page = page_as(browser, UNIT_MEMBER)
    page.goto(f"{url}/units/{UNIT}/request")
    assert "DEMO LOGIN" not in page.content()  # proxy login: no demo banner
    page.fill("#f-namespace", "di-reports")
    page.select_option("#f-node_pool", "general")
    page.type("#f-cpu", "4")
    page.type("#f-memory", "16Gi")
    shown = "t => document.getElementById('namespace-cost')?.textContent === t"
    first = pool_request_cost(catalog, "4")
    page.wait_for_function(shown, arg=first)
    assert "Fits" in page.inner_text("#estimate")
    page.fill("#f-cpu", "")
    page.type("#f-cpu", "400", delay=50)  # the pool has room for it, the budget has not
    second = pool_request_cost(catalog, "400")
    page.wait_for_function(shown, arg=second)
    assert second != first
    assert "above its budget" in page.inner_text("#estimate") and "Would be refused" in page.inner_text("#estimate")
    page.screenshot(path=shots / "request-over-budget.png", full_page=True)
    page.fill("#f-cpu", "")
    page.type("#f-cpu", "4", delay=50)
    page.wait_for_function(shown, arg=first)
    assert "Fits" in page.inner_text("#estimate")
    page.screenshot(path=shots / "request-form.png", full_page=True)
    page.click("button[type=submit]")
    page.wait_for_url(f"{url}/units/{UNIT}?submitted=1")
    assert "was sent to the platform team" in page.inner_text("main")
    page.screenshot(path=shots / "unit-home.png", full_page=True)
    assert "di-reports" not in unit_file.read_text(encoding="utf-8")

    platform = page_as(browser, PLATFORM)
    platform.goto(f"{url}/platform")
    assert "di-reports" in platform.inner_text("#request-1")
    platform.screenshot(path=shots / "platform.png", full_page=True)
    platform.click("text=Approve #1")
    platform.wait_for_url(f"{url}/platform")
    assert "No pending request" in platform.inner_text("main")
    assert "- name: di-reports" in unit_file.read_text(encoding="utf-8")
    page.goto(f"{url}/units/{UNIT}")
    assert "approved" in page.inner_text("main")


def test_a_unit_member_cannot_reach_another_units_pages_by_url(browser, portal, shots, issued: IssuedLedger) -> None:
    url, _ = portal
    page = page_as(browser, UNIT_MEMBER)
    response = page.goto(f"{url}/units/{OTHER_UNIT}/invoices/RP-{PERIOD}-{OTHER_UNIT}/html")
    assert response is not None and response.status == 403
    assert "Not yours to see" in page.inner_text("h1") and OTHER_UNIT not in page.inner_text("main")
    page.screenshot(path=shots / "forbidden.png")
    response = page.goto(f"{url}/units/{OTHER_UNIT}")
    assert response is not None and response.status == 403
    page.goto(f"{url}/units/{UNIT}/invoices")
    page.click(f"text=RP-{PERIOD}-{UNIT}")
    assert f"RP-{PERIOD}-{UNIT}" in page.inner_text("h1")
    page.screenshot(path=shots / "invoice.png", full_page=True)


def test_the_request_form_works_with_the_keyboard_alone(browser, portal, shots) -> None:
    url, catalog = portal
    page = page_as(browser, UNIT_MEMBER)
    page.goto(f"{url}/units/{UNIT}/request")

    def tab_to(element_id: str) -> None:
        for _ in range(40):
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement.id") == element_id:
                return
        raise AssertionError(f"Tab never reached #{element_id}")

    tab_to("f-namespace")
    page.keyboard.type("di-keys")
    tab_to("f-node_pool")
    page.keyboard.press("ArrowDown")  # the first pool after the empty choice
    assert page.evaluate("document.activeElement.value") == "general"
    tab_to("f-cpu")
    page.keyboard.type("2")
    tab_to("f-memory")
    page.keyboard.type("8Gi")
    page.wait_for_selector("#namespace-cost")
    page.screenshot(path=shots / "request-keyboard.png", full_page=True)
    page.keyboard.press("Enter")
    page.wait_for_url(f"{url}/units/{UNIT}?submitted=1")
    assert "di-keys" in page.inner_text("main")
    assert "di-keys" not in (catalog / "business-units" / f"{UNIT}.yaml").read_text(encoding="utf-8")  # pending


def test_finance_closes_a_month_and_downloads_focus(browser, portal, shots, issued: IssuedLedger) -> None:
    url, _ = portal
    page = page_as(browser, FINANCE)
    page.goto(f"{url}/finance")
    page.fill("#f-period", PERIOD)
    page.click("text=Close the month")
    page.wait_for_selector("text=recomputation is identical")
    page.screenshot(path=shots / "finance.png", full_page=True)
    with page.expect_download() as download:
        page.click(f"text=focus-{PERIOD}.csv")
    saved = Path(download.value.path())
    assert saved.read_text(encoding="utf-8") == (issued.folder / PERIOD / "focus.csv").read_text(encoding="utf-8")
