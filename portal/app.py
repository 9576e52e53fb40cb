"""The portal's web application (Starlette): who is asking, what they may see, and one handler per page.

Every page and download checks the person's role on the server; forms carry the session's CSRF token; an
unknown route is the 404 page and a fault the plain 500 page (the traceback goes to the log, never to the
browser). Money on the pages is read from issued documents or computed by `pool request`'s own code.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from chargeback.ledger.close import close_month
from chargeback.ledger.store import Issue
from chargeback.ledger_cli import EXPORTS
from chargeback.period import Period
from infra.alerts import alertmanager_config
from infra.errors import RequestError
from infra.request.history import read_history
from pool_catalog import Catalog
from pool_catalog.capacity import NODE_RESOURCES, format_amount, node_pool_room, tier_room
from pool_catalog.errors import UserError
from pool_catalog.estimate import UnitHistory
from pool_catalog.pricing import round_money

from .forms import RequestForm, check, form_from_stored, read_form
from .identity import LoginSettings, Person, Roles, roles_of
from .oidc import OidcClient, SignInError, pkce_pair
from .reads import CatalogCache, LedgerReader, UnitDocument, report_file, unit_focus_csv, unit_lines_csv
from .requests_store import RequestStore
from .sessions import COOKIE, Session, SessionSigner

SIGN_IN_COOKIE = "pool_portal_sign_in"
SIGN_IN_SECONDS = 600

log = logging.getLogger("pool.portal")

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
ISSUED_HTML_POLICY = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; font-src data:; sandbox"
"""An issued invoice's HTML is shown as issued, with no script and no request leaving the page."""


@dataclass(frozen=True)
class PortalConfig:
    """Where the data is and how people sign in; built from the command line by `portal.cli`."""

    catalog: Path
    ledger: str
    requests: Path
    reports: Path
    """Where a close from the finance page writes the month's reports (one folder per month)."""
    prometheus: str | None
    login: LoginSettings
    secret: bytes
    session_hours: float = 8.0


@dataclass
class Visit:
    """One request's person, roles, catalog and session."""

    person: Person
    roles: Roles
    catalog: Catalog
    session: Session
    cookie: str | None
    """A new session cookie to set, when the visit started a session."""
    csrf: str


class Portal:
    """The application state and its handlers."""

    def __init__(self, config: PortalConfig) -> None:
        self.config = config
        self.catalogs = CatalogCache(config.catalog)
        self.ledger = LedgerReader(config.ledger)
        self.store = RequestStore(config.requests)
        self.signer = SessionSigner(config.secret, int(config.session_hours * 3600))
        self.decisions = threading.Lock()
        """One approval or close at a time: the catalog file and the ledger each have one writer."""
        self.templates = Environment(
            loader=PackageLoader("portal", "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.templates.filters["money"] = _money
        self.oidc = OidcClient(config.login.oidc) if config.login.oidc else None
        self._histories: dict[str, tuple[Catalog, Path, UnitHistory | None]] = {}

    # ------------------------------------------------------------ who is asking

    def person(self, request: Request) -> Person | None:
        login = self.config.login
        if self.oidc is not None:
            session = self.signer.read(request.cookies.get(COOKIE), None)
            return Person(session.user, frozenset(session.groups)) if session else None
        if login.dev is not None:
            return login.dev.person
        if login.proxy is not None:
            client = request.client.host if request.client else None
            return login.proxy.person(client, {k.lower(): v for k, v in request.headers.items()})
        return None

    async def visit(self, request: Request) -> Visit:
        person = self.person(request)
        if person is None:
            raise HTTPException(401)
        catalog = await run_in_threadpool(self.catalogs.get)
        session = self.signer.read(request.cookies.get(COOKIE), person.name)
        cookie = None
        if session is None:
            session, cookie = self.signer.issue(person.name)
        return Visit(person, roles_of(person, catalog), catalog, session, cookie, self.signer.csrf_token(session))

    async def form(self, request: Request, visit: Visit) -> Any:
        """The posted form, after its CSRF token was checked (403 otherwise: nothing is done)."""
        form = await request.form()
        if not self.signer.csrf_ok(visit.session if visit.cookie is None else None, form.get("csrf")):
            raise HTTPException(403, "the form's security token is missing or expired: reload the page and retry")
        return form

    def unit_or_403(self, visit: Visit, unit: str, *, requesting: bool = False) -> Any:
        """The unit when the person may see it (may ask for it, with `requesting`); else 403, whether or not it
        exists, so a URL tells nothing about other units."""
        allowed = visit.roles.may_request_for(unit) if requesting else visit.roles.may_read_unit(unit)
        found = visit.catalog.unit(unit)
        if not allowed or found is None:
            raise HTTPException(403)
        return found

    # ------------------------------------------------------------ responses

    def page(self, visit: Visit | None, template: str, code: int = 200, **values: Any) -> HTMLResponse:
        html = self.templates.get_template(template).render(
            visit=visit, dev=self.config.login.dev is not None, oidc=self.oidc is not None, **values
        )
        response = HTMLResponse(html, status_code=code, headers=SECURITY_HEADERS)
        if visit is not None and visit.cookie is not None:
            self.set_cookie(response, visit.cookie)
        return response

    def set_cookie(self, response: Response, value: str) -> None:
        response.set_cookie(
            COOKIE,
            value,
            max_age=self.signer.lifetime,
            httponly=True,
            samesite="lax",
            secure=self._secure(),
            path="/",
        )

    def _secure(self) -> bool:
        """Secure cookies where the browser speaks HTTPS: behind the proxy, and with an https redirect URI."""
        login = self.config.login
        return login.proxy is not None or (login.oidc is not None and login.oidc.redirect_uri.startswith("https:"))

    # ------------------------------------------------------------ OpenID Connect sign-in

    async def sign_in(self, request: Request) -> Response:
        """Send the browser to the provider with a new state, nonce and PKCE verifier (kept in a signed,
        short-lived cookie, never in the URL)."""
        if self.oidc is None:
            raise HTTPException(404)
        target = request.query_params.get("next", "/")
        if not target.startswith("/") or target.startswith("//"):
            target = "/"  # only this portal's own pages: no open redirect
        state, nonce = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        verifier, challenge = pkce_pair()
        try:
            url = await run_in_threadpool(self.oidc.authorization_url, state, nonce, challenge)
        except SignInError as e:
            return self.page(None, "error.html.j2", 502, status=502, detail=str(e))
        response = RedirectResponse(url, status_code=303)
        sealed = self.signer.seal("sign-in", [state, nonce, verifier, target, int(time.time()) + SIGN_IN_SECONDS])
        response.set_cookie(
            SIGN_IN_COOKIE, sealed, max_age=SIGN_IN_SECONDS, httponly=True, samesite="lax", secure=self._secure()
        )
        return response

    async def signed_in(self, request: Request) -> Response:
        """The provider's redirect back: check the state, exchange the code, start the session."""
        if self.oidc is None:
            raise HTTPException(404)
        kept = self.signer.unseal("sign-in", request.cookies.get(SIGN_IN_COOKIE))
        params = request.query_params
        try:
            if not isinstance(kept, list) or len(kept) != 5 or kept[4] < time.time():
                raise SignInError("this sign-in took too long or started elsewhere: sign in again")
            state, nonce, verifier, target, _ = kept
            if params.get("error"):
                raise SignInError(f"the sign-in provider said: {params.get('error_description') or params['error']}")
            if not params.get("code") or params.get("state") != state:
                raise SignInError("this sign-in answer does not belong to your sign-in: sign in again")
            name, groups = await run_in_threadpool(self.oidc.sign_in, params["code"], verifier, nonce)
        except SignInError as e:
            log.info("sign-in failed: %s", e)
            response = self.page(None, "error.html.j2", 401, status=401, detail=str(e), sign_in=True)
            response.delete_cookie(SIGN_IN_COOKIE)
            return response
        _, cookie = self.signer.issue(name, groups=tuple(sorted(groups)))
        log.info("%s signed in (groups: %s)", name, ", ".join(sorted(groups)))
        response = RedirectResponse(target, status_code=303)
        self.set_cookie(response, cookie)
        response.delete_cookie(SIGN_IN_COOKIE)
        return response

    async def sign_out(self, request: Request) -> Response:
        await self.form(request, await self.visit(request))
        response = self.page(None, "error.html.j2", 200, status=200, detail="You are signed out.", sign_in=True)
        response.delete_cookie(COOKIE, path="/")
        return response

    def download(self, content: str, filename: str, media_type: str) -> Response:
        headers = {**SECURITY_HEADERS, "Content-Disposition": f'attachment; filename="{filename}"'}
        return Response(content.encode("utf-8"), media_type=media_type, headers=headers)

    # ------------------------------------------------------------ pages

    async def home(self, request: Request) -> Response:
        visit = await self.visit(request)
        units = [visit.catalog.unit(u) for u in visit.roles.units]
        return self.page(visit, "home.html.j2", units=units)

    async def unit_home(self, request: Request) -> Response:
        visit = await self.visit(request)
        unit = self.unit_or_403(visit, request.path_params["unit"])
        documents = await run_in_threadpool(self.ledger.unit_documents, unit.id)
        latest = next((d for d in documents if d.document.kind == "invoice"), None)
        in_force = None
        if latest is not None:
            in_force = await run_in_threadpool(self.ledger.unit_in_force, unit.id, latest.issue.period)
        requests = self.store.list(unit=unit.id)
        return self.page(
            visit,
            "unit.html.j2",
            unit=unit,
            latest=latest,
            invoice=latest.invoice if latest else None,
            in_force=in_force,
            requests=requests,
            submitted=request.query_params.get("submitted"),
        )

    async def invoices(self, request: Request) -> Response:
        visit = await self.visit(request)
        unit = self.unit_or_403(visit, request.path_params["unit"])
        documents = await run_in_threadpool(self.ledger.unit_documents, unit.id)
        return self.page(visit, "invoices.html.j2", unit=unit, documents=documents)

    async def _document(self, visit: Visit, unit: str, number: str, files: bool) -> UnitDocument:
        """The unit's document `number` (404 when the unit has none such), with its issue's report files only
        when asked: they are read for that one month."""
        documents = await run_in_threadpool(self.ledger.unit_documents, unit)
        found = next((d for d in documents if d.document.number == number), None)
        if found is None:
            raise HTTPException(404)
        if files:
            period, sequence = found.issue.period, found.issue.sequence
            issues = await run_in_threadpool(lambda: self.ledger.issues(period, files=True))
            found = UnitDocument(next(i for i in issues if i.sequence == sequence), found.document)
        return found

    async def invoice(self, request: Request) -> Response:
        visit = await self.visit(request)
        unit = self.unit_or_403(visit, request.path_params["unit"])
        found = await self._document(visit, unit.id, request.path_params["number"], files=True)
        formats = [f for f in ("html", "json") if report_file(found.issue, found.document, f) is not None]
        return self.page(
            visit, "invoice.html.j2", unit=unit, found=found, formats=[*formats, "csv", "focus"], doc=found.document
        )

    async def invoice_file(self, request: Request) -> Response:
        visit = await self.visit(request)
        unit = self.unit_or_403(visit, request.path_params["unit"])
        found = await self._document(visit, unit.id, request.path_params["number"], files=True)
        kind = request.path_params["format"]
        name = found.document.number
        if kind == "csv":
            return self.download(unit_lines_csv(found), f"{name}-lines.csv", "text/csv")
        if kind == "focus":
            return self.download(unit_focus_csv(found.issue, unit.id), f"{name}-focus.csv", "text/csv")
        if kind not in ("html", "json"):
            raise HTTPException(404)
        content = report_file(found.issue, found.document, kind)
        if content is None:
            raise HTTPException(404)
        if kind == "html":
            headers = {**SECURITY_HEADERS, "Content-Security-Policy": ISSUED_HTML_POLICY}
            return HTMLResponse(content, headers=headers)
        return self.download(content, f"{name}.json", "application/json")

    # ------------------------------------------------------------ the request form

    def history(self, catalog: Catalog, unit: str) -> UnitHistory | None:
        """The unit's last issued month as `pool request --history` reads it (None: nothing issued yet, or
        issued from a catalog that no longer matches; the estimate is then at full quota, as without it)."""
        found = catalog.unit(unit)
        folder = self.ledger.issued_month_folder(unit, self.config.requests.parent / "portal-history")
        if found is None or folder is None:
            return None
        cached = self._histories.get(unit)
        if cached is not None and cached[0] is catalog and cached[1] == folder:
            return cached[2]  # the same catalog and the same issued month: the same history
        try:
            history = read_history(folder, catalog, found)
        except RequestError as e:
            log.warning("unit %s: the last issued month is not used for the estimate: %s", unit, e)
            history = None
        self._histories[unit] = (catalog, folder, history)
        return history

    def _check(self, form: RequestForm, unit: str, catalog: Catalog, full: bool) -> RequestForm:
        return check(form, unit, catalog, full=full, history=self.history(catalog, unit))

    def _form_choices(self, catalog: Catalog, unit: str) -> dict[str, Any]:
        cluster = catalog.pool.clusters[0]
        capabilities = sorted(
            {cap.name for u in catalog.units if u.id != unit for ns in u.namespaces for cap in ns.exposes or []}
        )
        return {
            "clusters": [c.name for c in catalog.pool.clusters],
            "pools": [p.name for p in cluster.node_pools],
            "tiers": [t.name for t in cluster.storage_tiers],
            "capabilities": capabilities,
        }

    def _read_request_form(self, data: Any, catalog: Catalog, unit: str) -> RequestForm:
        choices = self._form_choices(catalog, unit)
        consumes = [c for c in data.getlist("consumes") if c in choices["capabilities"]]
        return read_form(data, consumes, choices["tiers"])

    def _request_page(self, visit: Visit, unit: Any, form: RequestForm, status: int = 200) -> HTMLResponse:
        return self.page(
            visit,
            "request.html.j2",
            status,
            unit=unit,
            form=form,
            estimate=self.estimate_view(visit.catalog, form),
            **self._form_choices(visit.catalog, unit.id),
        )

    async def request_form(self, request: Request) -> Response:
        visit = await self.visit(request)
        unit = self.unit_or_403(visit, request.path_params["unit"], requesting=True)
        form = self._read_request_form(request.query_params, visit.catalog, unit.id)
        return self._request_page(visit, unit, form)

    async def estimate(self, request: Request) -> Response:
        """The estimate while a person types: `pool request`'s checks without the policy pack."""
        visit = await self.visit(request)
        unit = self.unit_or_403(visit, request.path_params["unit"], requesting=True)
        form = self._read_request_form(request.query_params, visit.catalog, unit.id)
        if form.values["namespace"] or form.values["cpu"] or form.values["memory"]:
            form = await run_in_threadpool(self._check, form, unit.id, visit.catalog, False)
        return self.page(
            visit, "estimate.html.j2", form=form, estimate=self.estimate_view(visit.catalog, form), fragment=True
        )

    async def submit_request(self, request: Request) -> Response:
        visit = await self.visit(request)
        unit = self.unit_or_403(visit, request.path_params["unit"], requesting=True)
        data = await self.form(request, visit)
        form = self._read_request_form(data, visit.catalog, unit.id)
        form = await run_in_threadpool(self._check, form, unit.id, visit.catalog, True)
        if not form.ok:
            return self._request_page(visit, unit, form, status=422)
        decision = form.decision
        assert decision is not None and decision.cost is not None
        estimate = {
            "currency": decision.currency,
            "namespace_monthly": str(round_money(decision.cost.total, decision.currency)),
            "budget_lines": decision.budget_lines(),
            "warnings": decision.warnings,
            "new_namespace": decision.is_new,
        }
        number = self.store.add(unit.id, decision.namespace, form.stored_fields(), estimate, visit.person.name)
        log.info("request %s: %s asks for %s/%s", number, visit.person.name, unit.id, decision.namespace)
        return self.redirect(visit, f"/units/{unit.id}?submitted={number}")

    def redirect(self, visit: Visit, url: str) -> Response:
        response = RedirectResponse(url, status_code=303)
        if visit.cookie is not None:
            self.set_cookie(response, visit.cookie)
        return response

    def estimate_view(self, catalog: Catalog, form: RequestForm) -> dict[str, Any] | None:
        """The figures the form shows: the namespace at full quota, the unit against its budget (the lines of
        `pool request`), and the room left in the chosen node pool."""
        decision = form.decision
        if decision is None or decision.cost is None:
            return None
        currency = decision.currency
        room = []
        cluster = catalog.pool.cluster(decision.cluster)
        pool = cluster.node_pool(form.values["node_pool"]) if cluster and form.values["node_pool"] else None
        if cluster is not None and pool is not None:
            rooms = node_pool_room(catalog, cluster, pool)
            room = [
                f"{resource}: {format_amount(resource, max(rooms[resource].free, Decimal(0)))} free of "
                f"{format_amount(resource, rooms[resource].capacity * rooms[resource].overcommit)}"
                for resource in NODE_RESOURCES
            ]
        return {
            "currency": currency,
            "namespace": round_money(decision.cost.total, currency),
            "previous": None if decision.previous_cost is None else round_money(decision.previous_cost, currency),
            "budget_lines": decision.budget_lines(),
            "room": room,
            "pool": pool.name if pool else None,
            "accepted": decision.accepted,
            "warnings": decision.warnings,
        }

    # ------------------------------------------------------------ platform

    async def platform(self, request: Request, **values: Any) -> Response:
        visit = await self.visit(request)
        if not visit.roles.platform:
            raise HTTPException(403)
        pending = self.store.list(status="pending")
        decided = [r for r in self.store.list() if r.status != "pending"][:20]
        capacity = self._capacity(visit.catalog)
        return self.page(
            visit,
            "platform.html.j2",
            values.pop("status", 200),
            pending=pending,
            decided=decided,
            capacity=capacity,
            tiers=self._tiers(visit.catalog),
            routes=self._alert_routes(visit.catalog),
            **values,
        )

    def _alert_routes(self, catalog: Catalog) -> tuple[list[dict[str, Any]], str | None]:
        """The routes `pool alerts render` writes for Alertmanager: who gets which unit's alerts. Webhook
        addresses are counted, not shown (they may carry a token)."""
        try:
            config = alertmanager_config(catalog)
        except UserError as e:
            return [], str(e)
        receivers = {r["name"]: r for r in config["receivers"]}
        route = config["route"]
        rows = []
        for each in [*route.get("routes", []), {"receiver": route["receiver"], "matchers": []}]:
            receiver = receivers.get(each["receiver"], {})
            rows.append(
                {
                    "matchers": ", ".join(each.get("matchers", [])) or "every other alert",
                    "receiver": each["receiver"],
                    "emails": [c["to"] for c in receiver.get("email_configs", [])],
                    "webhooks": len(receiver.get("webhook_configs", [])),
                }
            )
        return rows, None

    def _tiers(self, catalog: Catalog) -> list[tuple[str, str, str, str]]:
        """(cluster/tier, promised, capacity, free) of every storage tier (never overcommitted)."""
        rows = []
        for cluster in catalog.pool.clusters:
            for tier in cluster.storage_tiers:
                room = tier_room(catalog, cluster, tier.name)
                rows.append(
                    (
                        f"{cluster.name}/{tier.name}",
                        format_amount("storage", room.allocated),
                        format_amount("storage", room.capacity),
                        format_amount("storage", max(room.free, Decimal(0))),
                    )
                )
        return rows

    def _capacity(self, catalog: Catalog) -> list[dict[str, Any]]:
        rows = []
        for cluster in catalog.pool.clusters:
            for pool in cluster.node_pools:
                rooms = node_pool_room(catalog, cluster, pool)
                rows.append(
                    {
                        "where": f"{cluster.name}/{pool.name}",
                        "room": {
                            r: (
                                format_amount(r, rooms[r].allocated),
                                format_amount(r, rooms[r].capacity * rooms[r].overcommit),
                                format_amount(r, max(rooms[r].free, Decimal(0))),
                            )
                            for r in NODE_RESOURCES
                        },
                    }
                )
        return rows

    async def approve(self, request: Request) -> Response:
        visit = await self.visit(request)
        if not visit.roles.platform:
            raise HTTPException(403)
        await self.form(request, visit)
        stored = self.store.get(int(request.path_params["id"]))
        if stored is None:
            raise HTTPException(404)
        if stored.status != "pending":
            return await self.platform(request, status=409, problem=f"request {stored.id} was already {stored.status}")

        def decide() -> RequestForm:
            with self.decisions:
                catalog = self.catalogs.get()
                form = self._check(form_from_stored(stored.fields), stored.unit, catalog, True)
                if form.ok and form.decision is not None:
                    if form.decision.changed:
                        form.decision.write()  # exactly what `pool request --write` writes, atomically
                    self.store.decide(stored.id, "approved", visit.person.name, None)
                return form

        form = await run_in_threadpool(decide)
        if not form.ok:
            problems = [*form.general, *(m for ms in form.errors.values() for m in ms)]
            return await self.platform(
                request, status=409, problem=f"request {stored.id} no longer passes: " + "; ".join(problems)
            )
        log.info("request %s approved by %s", stored.id, visit.person.name)
        return self.redirect(visit, "/platform")

    async def decline(self, request: Request) -> Response:
        visit = await self.visit(request)
        if not visit.roles.platform:
            raise HTTPException(403)
        data = await self.form(request, visit)
        stored = self.store.get(int(request.path_params["id"]))
        if stored is None:
            raise HTTPException(404)
        reason = str(data.get("reason") or "").strip()
        if not reason or len(reason) > 1000:
            return await self.platform(
                request,
                status=422,
                reason_error=(stored.id, "give the reason the unit will read (at most 1,000 characters)"),
            )
        if not self.store.decide(stored.id, "declined", visit.person.name, reason):
            return await self.platform(request, status=409, problem=f"request {stored.id} was already decided")
        log.info("request %s declined by %s", stored.id, visit.person.name)
        return self.redirect(visit, "/platform")

    # ------------------------------------------------------------ finance

    async def finance(self, request: Request, **values: Any) -> Response:
        visit = await self.visit(request)
        if not visit.roles.finance:
            raise HTTPException(403)
        months = await run_in_threadpool(self.ledger.months)
        return self.page(
            visit,
            "finance.html.j2",
            values.pop("status", 200),
            months=months,
            units=[u.id for u in visit.catalog.units],
            prometheus=self.config.prometheus,
            ledger=self.ledger.display_name,
            **values,
        )

    async def close(self, request: Request) -> Response:
        visit = await self.visit(request)
        if not visit.roles.finance:
            raise HTTPException(403)
        data = await self.form(request, visit)
        text = str(data.get("period") or "").strip()
        correct = data.get("correct") == "yes"
        try:
            period = Period.parse(text)
        except UserError as e:
            return await self.finance(request, status=422, period_error=str(e), period_value=text)
        if self.config.prometheus is None:
            return await self.finance(
                request, status=422, refusal="no Prometheus configured: start the portal with --prometheus URL"
            )

        def run() -> Any:
            with self.decisions:
                return close_month(
                    period,
                    self.catalogs.get(),
                    self.config.prometheus,
                    self.config.reports / period.label,
                    self.config.ledger,
                    correct=correct,
                    issued_by=visit.person.name,
                )

        try:
            result = await run_in_threadpool(run)
        except UserError as e:
            log.info("close %s refused: %s", period.label, e)
            return await self.finance(request, status=409, refusal=str(e), period_value=text)
        log.info("close %s by %s: %s", period.label, visit.person.name, result.outcome)
        return await self.finance(request, result=result, period_value=text)

    async def _issued_month(self, request: Request) -> tuple[str, list[Issue]]:
        """The month (?period=) and its issues with their report files, for finance only (403), 404 if none."""
        visit = await self.visit(request)
        if not visit.roles.finance:
            raise HTTPException(403)
        period = request.query_params.get("period", "")
        issues = await run_in_threadpool(lambda: self.ledger.issues(period, files=True))
        if not issues:
            raise HTTPException(404)
        return period, issues

    async def finance_summary(self, request: Request) -> Response:
        """The month's finance summary as issued with its original invoices (shown as issued, no script)."""
        _, issues = await self._issued_month(request)
        content = next((i.files.get("finance-summary.html") for i in issues if i.kind == "original"), None)
        if content is None:
            raise HTTPException(404)
        return HTMLResponse(content, headers={**SECURITY_HEADERS, "Content-Security-Policy": ISSUED_HTML_POLICY})

    async def finance_focus(self, request: Request) -> Response:
        """The month's FOCUS rows as issued (corrections after the original), as `chargeback ledger export`."""
        period, issues = await self._issued_month(request)
        try:
            content = EXPORTS["focus"](issues)
        except UserError as e:
            return await self.finance(request, status=409, refusal=str(e))
        return self.download(content, f"focus-{period}.csv", "text/csv")

    # ------------------------------------------------------------ errors

    async def http_error(self, request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        detail = exc.detail if isinstance(exc, HTTPException) and exc.detail else ""
        log.info("%s %s → %s", request.method, request.url.path, status)
        if status == 401 and self.oidc is not None and request.method == "GET":
            return RedirectResponse(f"/auth/login?{urlencode({'next': request.url.path})}", status_code=303)
        if status == 401:
            detail = "You are not signed in: open the portal through the company's sign-in."
        return self.page(None, "error.html.j2", status, status=status, detail=detail)

    async def server_error(self, request: Request, exc: Exception) -> Response:
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        html = self.templates.get_template("error.html.j2").render(
            visit=None, dev=self.config.login.dev is not None, status=500, detail=""
        )
        return HTMLResponse(html, status_code=500, headers=SECURITY_HEADERS)


def _money(value: Any, currency: str = "") -> str:
    amount = Decimal(str(value))
    return f"{round_money(amount, currency) if currency else amount:,}"


def create_app(config: PortalConfig) -> Starlette:
    """The ASGI application for `config` (uvicorn serves it; tests drive it through Starlette's test client)."""
    portal = Portal(config)
    routes = [
        Route("/", portal.home),
        Route("/auth/login", portal.sign_in),
        Route("/auth/callback", portal.signed_in),
        Route("/auth/logout", portal.sign_out, methods=["POST"]),
        Route("/units/{unit}", portal.unit_home),
        Route("/units/{unit}/invoices", portal.invoices),
        Route("/units/{unit}/invoices/{number}", portal.invoice),
        Route("/units/{unit}/invoices/{number}/{format}", portal.invoice_file),
        Route("/units/{unit}/request", portal.request_form, methods=["GET"]),
        Route("/units/{unit}/request", portal.submit_request, methods=["POST"]),
        Route("/units/{unit}/estimate", portal.estimate),
        Route("/platform", portal.platform),
        Route("/platform/requests/{id:int}/approve", portal.approve, methods=["POST"]),
        Route("/platform/requests/{id:int}/decline", portal.decline, methods=["POST"]),
        Route("/finance", portal.finance),
        Route("/finance/close", portal.close, methods=["POST"]),
        Route("/finance/focus", portal.finance_focus),
        Route("/finance/summary", portal.finance_summary),
        Mount("/static", StaticFiles(packages=[("portal", "static")]), name="static"),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        yield
        portal.ledger.dispose()

    app = Starlette(
        routes=routes,
        exception_handlers={HTTPException: portal.http_error, 500: portal.server_error},
        lifespan=lifespan,
    )
    app.state.portal = portal
    return app
