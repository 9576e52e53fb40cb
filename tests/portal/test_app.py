"""The portal through Starlette's test client on real data (a ledger closed from a real Prometheus, a copy of
the example catalog): who sees what, CSRF, the request form's validation and estimate (the figures of
`pool request`), approval writing the file `pool request --write` writes, declines, invoices and downloads
tied to the ledger, finance's close with its refusals, the 404 and 500 pages."""

from __future__ import annotations

import csv
import dataclasses
import html
import io
import json
import logging
import re
import shutil
from decimal import Decimal
from pathlib import Path

import pytest
from starlette.testclient import TestClient
from typer.testing import CliRunner

from chargeback.ledger.close import close_month
from chargeback.ledger.store import Ledger
from infra.cli import app as pool_cli
from portal.app import create_app
from portal.cli import app as portal_cli
from portal.errors import PortalError
from portal.identity import login_settings
from portal.sessions import COOKIE, SessionSigner
from tests.support.catalog_edit import EXAMPLE_CATALOG, edit_yaml
from tests.support.portal import (
    FINANCE,
    OTHER_UNIT,
    PERIOD,
    PLATFORM,
    UNIT_MEMBER,
    IssuedLedger,
    as_person,
    portal_config,
)
from tests.support.postgres import local_postgres
from tests.support.prometheus import ScenarioServer

pytestmark = pytest.mark.prometheus

UNIT = "data-insight"
NEW = {"namespace": "di-reports", "node_pool": "general", "cpu": "4", "memory": "16Gi", "storage_hot": "100Gi"}


def client(config, person: tuple[str, ...], host: str = "127.0.0.1") -> TestClient:
    """The person's browser behind the proxy, which speaks HTTPS to it (the session cookie is Secure)."""
    return TestClient(
        create_app(config),
        base_url="https://portal.test",
        headers=as_person(*person),
        client=(host, 50000),
        raise_server_exceptions=False,
    )


def csrf_of(page: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', page)
    assert match, "the form carries no CSRF token"
    return match.group(1)


@pytest.fixture
def config(tmp_path: Path, issued: IssuedLedger, priced_prometheus: ScenarioServer):
    return portal_config(tmp_path, issued, priced_prometheus.url)


def unit_file(config) -> Path:
    return config.catalog / "business-units" / f"{UNIT}.yaml"


# ------------------------------------------------------------------ login and roles


def test_without_a_login_mode_the_portal_refuses_to_start(tmp_path: Path) -> None:
    with pytest.raises(PortalError, match="no login configured"):
        login_settings(dev_user=None, dev_groups=None, trusted_proxies=[], user_header="u", groups_header="g")
    result = CliRunner().invoke(portal_cli, ["--ledger", str(tmp_path / "ledger.db")])
    assert result.exit_code == 2
    assert "no login configured" in result.output and "Traceback" not in result.output


def test_proxy_headers_count_only_from_the_proxy(config) -> None:
    from_elsewhere = client(config, UNIT_MEMBER, host="10.1.2.3")
    page = from_elsewhere.get(f"/units/{UNIT}")
    assert page.status_code == 401 and "Not signed in" in page.text
    assert client(config, UNIT_MEMBER).get(f"/units/{UNIT}").status_code == 200


def test_a_unit_member_gets_403_and_nothing_else_for_another_units_pages(config, issued: IssuedLedger) -> None:
    member = client(config, UNIT_MEMBER)
    with Ledger(issued.ledger) as book:
        other = next(d for i in book.issues() for d in i.documents if d.business_unit == OTHER_UNIT)
    for url in (
        f"/units/{OTHER_UNIT}",
        f"/units/{OTHER_UNIT}/invoices",
        f"/units/{OTHER_UNIT}/invoices/{other.number}",
        f"/units/{OTHER_UNIT}/invoices/{other.number}/json",
        f"/units/{OTHER_UNIT}/invoices/{other.number}/focus",
        f"/units/{OTHER_UNIT}/request",
        f"/units/{OTHER_UNIT}/estimate?namespace=x&cpu=1&memory=1Gi",
        "/units/no-such-unit",
        "/platform",
        "/finance",
        f"/finance/focus?period={PERIOD}",
        f"/finance/summary?period={PERIOD}",
    ):
        page = member.get(url)
        assert page.status_code == 403, url
        assert other.number not in page.text and other.total not in page.text, url
    # Another unit's document under the member's own unit: not found there, and nothing of it shown.
    crossed = member.get(f"/units/{UNIT}/invoices/{other.number}/json")
    assert crossed.status_code == 404 and other.total not in crossed.text
    assert member.post("/finance/close", data={"period": PERIOD}).status_code == 403


# ------------------------------------------------------------------ invoices from the ledger


def test_unit_home_and_downloads_tie_out_to_the_ledger(config, issued: IssuedLedger) -> None:
    member = client(config, UNIT_MEMBER)
    with Ledger(issued.ledger) as book:
        (issue,) = book.issues(period=PERIOD)
    document = next(d for d in issue.documents if d.business_unit == UNIT)
    home = member.get(f"/units/{UNIT}")
    total = re.search(r'id="total-in-force">([^<]+)<', home.text).group(1)
    assert total == f"{Decimal(document.total):,} {document.currency}"
    listing = member.get(f"/units/{UNIT}/invoices")
    assert document.number in listing.text and OTHER_UNIT not in listing.text

    issued_json = member.get(f"/units/{UNIT}/invoices/{document.number}/json")
    assert issued_json.status_code == 200 and "attachment" in issued_json.headers["content-disposition"]
    assert issued_json.text == document.content

    focus = list(csv.DictReader(io.StringIO(member.get(f"/units/{UNIT}/invoices/{document.number}/focus").text)))
    assert focus and {row["BillingAccountId"] for row in focus} == {UNIT}
    assert sum(Decimal(row["BilledCost"]) for row in focus) == Decimal(document.total)

    lines = list(csv.DictReader(io.StringIO(member.get(f"/units/{UNIT}/invoices/{document.number}/csv").text)))
    assert {row["document"] for row in lines} == {document.number}
    assert sum(Decimal(row["amount"]) for row in lines) == Decimal(document.total)

    view = member.get(f"/units/{UNIT}/invoices/{document.number}/html")
    assert view.status_code == 200 and document.number in view.text
    assert "sandbox" in view.headers["content-security-policy"]


# ------------------------------------------------------------------ the request form


def pool_request_json(catalog: Path, *extra: str) -> dict:
    args = ["request", "--unit", UNIT, "--namespace", NEW["namespace"], "--node-pool", NEW["node_pool"]]
    args += ["--cpu", NEW["cpu"], "--memory", NEW["memory"], "--storage", "hot=100Gi", "--catalog", str(catalog)]
    result = CliRunner().invoke(pool_cli, [*args, "--json", *extra])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout[result.stdout.index("{") :])


def test_the_estimate_is_pool_requests_with_the_last_issued_month_and_follows_the_quota(
    config, issued: IssuedLedger
) -> None:
    member = client(config, UNIT_MEMBER)
    # What `pool request --history <the issued month's folder>` decides.
    expected = pool_request_json(config.catalog, "--history", str(issued.folder / PERIOD))
    first = member.get(f"/units/{UNIT}/estimate", params=NEW)
    assert first.status_code == 200
    cost = re.search(r'id="namespace-cost">([^<]+)<', first.text).group(1)
    assert cost == f"{Decimal(expected['monthly_cost']):,} {expected['currency']}"
    after = Decimal(expected["estimate"]["expected_after"])
    text = html.unescape(first.text)
    assert f"expected from {PERIOD}'s use: " in text and f"→ {after:,} CNY" in text
    assert "budget 60,000.00 CNY" in text and "compared: the expected figure" in text
    assert "Fits" in text
    bigger = member.get(f"/units/{UNIT}/estimate", params={**NEW, "cpu": "8"})
    assert re.search(r'id="namespace-cost">([^<]+)<', bigger.text).group(1) != cost


def test_bad_fields_are_refused_beside_the_field_and_nothing_is_written(config) -> None:
    member = client(config, UNIT_MEMBER)
    before = unit_file(config).read_bytes()
    token = csrf_of(member.get(f"/units/{UNIT}/request").text)
    page = member.post(
        f"/units/{UNIT}/request",
        data={"csrf": token, **NEW, "namespace": "Reports_DB", "cpu": "lots", "storage_hot": "-5Gi"},
    )
    assert page.status_code == 422
    for name in ("cpu", "storage_hot"):
        assert re.search(rf'id="e-{name}">[^<]*\S', page.text), f"no message beside {name}"
    assert "not a Kubernetes quantity" in page.text
    assert 'aria-invalid="true"' in page.text
    over = member.post(f"/units/{UNIT}/request", data={"csrf": token, **NEW, "cpu": "900"})
    assert over.status_code == 422 and re.search(r'id="e-cpu">[^<]*node pool', over.text)
    badname = member.post(f"/units/{UNIT}/request", data={"csrf": token, **NEW, "namespace": "Reports_DB"})
    assert badname.status_code == 422 and re.search(r'id="e-namespace">[^<]*\S', badname.text)
    assert unit_file(config).read_bytes() == before
    assert "No requests yet" in member.get(f"/units/{UNIT}").text


def test_forms_need_the_sessions_csrf_token(config) -> None:
    member = client(config, UNIT_MEMBER)
    for token in (None, "forged"):
        data = {**NEW} if token is None else {"csrf": token, **NEW}
        assert member.post(f"/units/{UNIT}/request", data=data).status_code == 403
    # A token from someone else's session does not count either.
    other = client(config, ("bob", "data-insight-admins"))
    foreign = csrf_of(other.get(f"/units/{UNIT}/request").text)
    assert member.post(f"/units/{UNIT}/request", data={"csrf": foreign, **NEW}).status_code == 403
    assert "No requests yet" in member.get(f"/units/{UNIT}").text


def test_submit_approve_writes_what_pool_request_write_writes(config, tmp_path: Path) -> None:
    member = client(config, UNIT_MEMBER)
    reference = tmp_path / "reference"
    shutil.copytree(config.catalog, reference / "catalog")
    pool_request_json(reference / "catalog", "--write")
    expected = (reference / "catalog" / "business-units" / f"{UNIT}.yaml").read_text(encoding="utf-8")

    hostile = "<script>alert('x')</script> & reports"
    token = csrf_of(member.get(f"/units/{UNIT}/request").text)
    sent = member.post(f"/units/{UNIT}/request", data={"csrf": token, **NEW, "purpose": ""}, follow_redirects=False)
    assert sent.status_code == 303, sent.text
    assert "di-reports" not in unit_file(config).read_text(encoding="utf-8")  # pending: nothing written yet

    platform = client(config, PLATFORM)
    queue = platform.get("/platform")
    assert "di-reports" in queue.text and "ann" in queue.text
    route = re.search(
        r"<td><code>business_unit=&#34;data-insight&#34;</code></td><td>([^<]+)</td><td>([^<]*)</td>", queue.text
    )
    assert route and route.groups() == ("unit-data-insight", "data-insight-oncall@group.example.com")
    assert "dingtalk/data-insight" not in queue.text  # a webhook address may carry a token
    hot = re.compile(r"<td>dc1/hot</td><td>([^<]+)</td><td>([^<]+)</td><td>([^<]+)</td>")
    hot_before = hot.search(queue.text).groups()
    approved = platform.post("/platform/requests/1/approve", data={"csrf": csrf_of(queue.text)})
    assert approved.status_code == 200
    assert unit_file(config).read_text(encoding="utf-8") == expected
    hot_after = hot.search(approved.text).groups()
    assert hot_after[1] == hot_before[1] and hot_after[0] != hot_before[0]  # 100Gi more promised on hot
    assert re.search(r"approved.*pete", member.get(f"/units/{UNIT}").text, re.S)

    # A second request, declined with a hostile reason: the unit reads it, escaped.
    small = {"namespace": "di-more", "node_pool": "general", "cpu": "1", "memory": "1Gi", "purpose": hostile}
    second = member.post(f"/units/{UNIT}/request", data={"csrf": token, **small}, follow_redirects=False)
    assert second.status_code == 303, second.text
    queue = platform.get("/platform")
    assert "<script>alert" not in queue.text and "&lt;script&gt;alert(&#39;x&#39;)" in queue.text
    empty = platform.post("/platform/requests/2/decline", data={"csrf": csrf_of(queue.text), "reason": "  "})
    assert empty.status_code == 422 and "give the reason" in empty.text
    platform.post("/platform/requests/2/decline", data={"csrf": csrf_of(queue.text), "reason": hostile})
    home = member.get(f"/units/{UNIT}").text
    assert "declined" in home and "&lt;script&gt;alert(" in home and "<script>alert" not in home
    assert "di-more" not in unit_file(config).read_text(encoding="utf-8")
    again = platform.post("/platform/requests/2/approve", data={"csrf": csrf_of(queue.text)})
    assert again.status_code == 409 and "already declined" in again.text


# ------------------------------------------------------------------ finance


def test_finance_sees_months_closes_with_the_clis_refusals_and_downloads_focus(config, issued: IssuedLedger) -> None:
    finance = client(config, FINANCE)
    page = finance.get("/finance")
    assert PERIOD in page.text and "closed" in page.text
    token = csrf_of(page.text)
    bad = finance.post("/finance/close", data={"csrf": token, "period": "2026-13"})
    assert bad.status_code == 422 and re.search(r'id="e-period">[^<]*months run from 01 to 12', bad.text)
    running = finance.post("/finance/close", data={"csrf": token, "period": "2099-01"})
    assert running.status_code == 409 and "only a month that is over can be closed" in running.text
    again = finance.post("/finance/close", data={"csrf": token, "period": PERIOD})
    assert again.status_code == 200 and "recomputation is identical, nothing issued" in again.text
    with Ledger(issued.ledger) as book:
        assert len(book.issues()) == 1
    summary = finance.get(f"/finance/summary?period={PERIOD}")
    assert summary.status_code == 200 and "sandbox" in summary.headers["content-security-policy"]
    assert summary.text == (issued.folder / PERIOD / "finance-summary.html").read_text(encoding="utf-8")
    focus = finance.get(f"/finance/focus?period={PERIOD}")
    assert focus.status_code == 200
    assert focus.text == (issued.folder / PERIOD / "focus.csv").read_text(encoding="utf-8")


# ------------------------------------------------------------------ sessions, 404, 500


def test_the_session_cookie_is_signed_httponly_samesite_and_expires(config) -> None:
    member = client(config, UNIT_MEMBER)
    page = member.get("/")
    cookie = page.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=") and "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" in cookie
    assert "Max-Age=28800" in cookie
    signer = SessionSigner(config.secret, 60)
    session, value = signer.issue("ann", now=1000)
    assert signer.read(value, "ann", now=1059) == session
    assert signer.read(value, "ann", now=1061) is None  # expired
    assert signer.read(value, "bob", now=1001) is None  # another person's cookie
    assert signer.read(value[:-1] + ("0" if value[-1] != "0" else "1"), "ann", now=1001) is None  # tampered


def test_unknown_route_is_a_404_page_and_a_fault_a_plain_500(config, caplog: pytest.LogCaptureFixture) -> None:
    app = create_app(config)
    member = TestClient(app, headers=as_person(*UNIT_MEMBER), client=("127.0.0.1", 1), raise_server_exceptions=False)
    missing = member.get("/no/such/page")
    assert missing.status_code == 404 and "Page not found" in missing.text

    def broken(*_: object, **__: object) -> None:
        raise RuntimeError("disk on fire")

    app.state.portal.ledger.unit_documents = broken
    with caplog.at_level(logging.ERROR, logger="pool.portal"):
        fault = member.get(f"/units/{UNIT}")
    assert fault.status_code == 500 and "Something went wrong" in fault.text
    assert "Traceback" not in fault.text and "disk on fire" not in fault.text
    assert any("disk on fire" in str(r.exc_info[1]) for r in caplog.records if r.exc_info)


def test_the_ledger_on_postgresql(tmp_path: Path, issued: IssuedLedger, priced_prometheus: ScenarioServer) -> None:
    """The same pages over a ledger on a real PostgreSQL (started by the test)."""
    with local_postgres() as server:
        # Trust authentication ignores the password; the portal must not show it anywhere.
        user, _, rest = server.create_database("portal_ledger").removeprefix("postgresql://").partition("@")
        assert rest, "the test server's URL names its user"
        url = f"postgresql://{user}:topsecret@{rest}"
        (tmp_path / "reports").mkdir()
        close_month(PERIOD, EXAMPLE_CATALOG, priced_prometheus.url, tmp_path / "reports" / PERIOD, url, issued_by="fay")
        config = dataclasses.replace(portal_config(tmp_path, issued, priced_prometheus.url), ledger=url)
        with Ledger(url) as book:
            (issue,) = book.issues()
        document = next(d for d in issue.documents if d.business_unit == UNIT)
        home = client(config, UNIT_MEMBER).get(f"/units/{UNIT}")
        assert re.search(r'id="total-in-force">([^<]+)<', home.text).group(1) == (
            f"{Decimal(document.total):,} {document.currency}"
        )
        finance = client(config, FINANCE)
        page = finance.get("/finance")
        assert PERIOD in page.text and "postgresql" in page.text and "topsecret" not in page.text
        again = finance.post("/finance/close", data={"csrf": csrf_of(page.text), "period": PERIOD})
        assert "recomputation is identical, nothing issued" in again.text


def test_finance_corrects_a_month_and_the_unit_sees_the_note_beside_its_invoice(
    tmp_path: Path, issued: IssuedLedger, priced_prometheus: ScenarioServer
) -> None:
    """A retroactive price change: close shows the differences and issues nothing; with "issue corrections"
    the notes are issued and the unit's total in force is the invoice plus its note, to the cent."""
    (tmp_path / "reports").mkdir()
    own = IssuedLedger(tmp_path / "reports", tmp_path / "reports" / "ledger.db")
    config = portal_config(tmp_path, own, priced_prometheus.url)
    close_month(PERIOD, config.catalog, priced_prometheus.url, own.folder / PERIOD, own.ledger, issued_by="fay")
    edit_yaml(config.catalog / "rates.yaml", lambda document: document["versions"][0]["cpu"].update(price="0.30"))

    finance = client(config, FINANCE)
    token = csrf_of(finance.get("/finance").text)
    differs = finance.post("/finance/close", data={"csrf": token, "period": PERIOD})
    assert "recomputation differs, nothing issued" in differs.text
    assert "dc1/di-api cpu at prices from 2026-01-01T00:00:00Z" in differs.text
    with Ledger(own.ledger) as book:
        assert len(book.issues()) == 1
    corrected = finance.post("/finance/close", data={"csrf": token, "period": PERIOD, "correct": "yes"})
    assert "corrections issued" in corrected.text
    assert re.search(rf"<td>{PERIOD}</td><td>corrected \(1\)</td>", finance.get("/finance").text)

    with Ledger(own.ledger) as book:
        original, correction = book.issues()
    invoice = next(d for d in original.documents if d.business_unit == UNIT)
    note = next(d for d in correction.documents if d.business_unit == UNIT)
    member = client(config, UNIT_MEMBER)
    listing = member.get(f"/units/{UNIT}/invoices").text
    assert note.number in listing and f"corrects {invoice.number}" in listing
    home = member.get(f"/units/{UNIT}").text
    total = Decimal(invoice.total) + Decimal(note.total)
    assert re.search(r'id="total-in-force">([^<]+)<', home).group(1) == f"{total:,} {invoice.currency}"
    note_json = member.get(f"/units/{UNIT}/invoices/{note.number}/json")
    assert note_json.status_code == 200 and note.number in note_json.text
