"""How fast the portal's pages answer on the demo's data (a benchmark, not a timed test).

Builds the portal in-process over a catalog and a ledger (after `make demo`: catalog/ and out/demo/ledger.db),
signs in as a member of every unit, the platform team and finance, requests each page `--rounds` times
through the ASGI test client and prints p50/p95 per page against the goals: every page p95 ≤ 200 ms, the
request form's estimate (what runs while a person types) ≤ 100 ms. The times include the in-process client,
so they are an upper bound of the server's. Prints the machine's load with them.

    .venv/bin/python bench/portal_speed.py [--catalog catalog] [--ledger out/demo/ledger.db] [--rounds 30]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
from starlette.testclient import TestClient  # noqa: E402

from chargeback.ledger.store import Ledger  # noqa: E402
from pool_catalog import load_catalog  # noqa: E402
from portal.app import PortalConfig, create_app  # noqa: E402
from portal.identity import login_settings  # noqa: E402

PAGE_GOAL_MS = 200.0
ESTIMATE_GOAL_MS = 100.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalog", type=Path, default=REPO / "catalog")
    parser.add_argument("--ledger", default=str(REPO / "out" / "demo" / "ledger.db"))
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    if "://" not in args.ledger and not Path(args.ledger).exists():
        sys.exit(f"no ledger at {args.ledger}: run `make demo` first (it closes two months into out/demo/ledger.db)")
    catalog = load_catalog(args.catalog)
    groups = [g for u in catalog.units for g in u.owners]
    if catalog.pool.portal is not None:
        groups += [*catalog.pool.portal.platform_groups, *catalog.pool.portal.finance_groups]
    login = login_settings(
        dev_user="bench", dev_groups=",".join(groups), trusted_proxies=[], user_header="u", groups_header="g"
    )
    with Ledger(args.ledger) as book:
        issues = book.issues(files=False)
    if not issues:
        sys.exit(f"the ledger {args.ledger} holds no issued month: run `make demo`")
    latest = issues[-1]
    document = latest.documents[0]
    unit = document.business_unit
    with tempfile.TemporaryDirectory() as scratch:
        config = PortalConfig(
            catalog=args.catalog,
            ledger=args.ledger,
            requests=Path(scratch) / "requests.db",
            reports=Path(scratch),
            prometheus=None,
            login=login,
            secret=os.urandom(32),
        )
        client = TestClient(create_app(config))
        pool = catalog.pool.clusters[0].node_pools[0].name
        estimate = f"/units/{unit}/estimate?namespace={unit}-bench&node_pool={pool}&cpu=2&memory=8Gi"
        pages = {
            "home": "/",
            "unit home": f"/units/{unit}",
            "invoices": f"/units/{unit}/invoices",
            "invoice": f"/units/{unit}/invoices/{document.number}",
            "invoice JSON": f"/units/{unit}/invoices/{document.number}/json",
            "invoice FOCUS": f"/units/{unit}/invoices/{document.number}/focus",
            "request form": f"/units/{unit}/request",
            "estimate": estimate,
            "platform": "/platform",
            "finance": "/finance",
            f"FOCUS {latest.period}": f"/finance/focus?period={latest.period}",
        }
        print(f"portal on {args.catalog} ({len(catalog.units)} units) and {args.ledger} ({len(issues)} issues)")
        print(f"{'page':<22}{'p50 ms':>9}{'p95 ms':>9}  goal")
        failed = []
        for name, path in pages.items():
            client.get(path)  # warm: templates compiled, catalog and ledger opened
            seconds = []
            for _ in range(args.rounds):
                began = time.perf_counter()
                response = client.get(path)
                seconds.append(time.perf_counter() - began)
                if response.status_code != 200:
                    sys.exit(f"{name}: {path} answered {response.status_code}")
            p50 = statistics.median(seconds) * 1000
            p95 = statistics.quantiles(seconds, n=20)[18] * 1000 if len(seconds) >= 2 else p50
            goal = ESTIMATE_GOAL_MS if name == "estimate" else PAGE_GOAL_MS
            verdict = "ok" if p95 <= goal else "OVER"
            if p95 > goal:
                failed.append(name)
            print(f"{name:<22}{p50:>9.1f}{p95:>9.1f}  ≤ {goal:.0f} ms {verdict}")
    print(f"load average (1 min) at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    if failed:
        print(f"over the goal: {', '.join(failed)}")


if __name__ == "__main__":
    main()
