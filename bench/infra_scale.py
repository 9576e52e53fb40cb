"""How fast the Pulumi program builds a large pool under mocks.

Generates a catalog of 500 business units × 4 namespaces (2,000 namespaces) on one cluster with
enough servers, storage and addresses, runs the program under Pulumi's mocks (`infra.mocks`) and
prints resources built, seconds, resources per second and the ratio to the goal: 2,000 namespaces
in at most 20 s on a 2-core machine.

It also times the floor: the same number of bare Namespaces (name and two labels, no parent, no
options) under the same mocks — what Pulumi's Python SDK alone costs per resource — so the ratio
shows how much the program adds to the SDK.

    .venv/bin/python bench/infra_scale.py [--units 500] [--namespaces-per-unit 4]
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from infra.mocks import run_program, run_pulumi  # noqa: E402
from pool_catalog import load_catalog  # noqa: E402

GOAL_SECONDS = 20.0
GOAL_NAMESPACES = 2000
LB_RANGE = ipaddress.ip_network("10.96.0.0/16")


def write_catalog(root: Path, units: int, per_unit: int) -> None:
    namespaces = units * per_unit
    servers = max(4, -(-namespaces * 2 // (64 * 2)))  # 2 cores per namespace, 64-core servers, cpu overcommit 2
    memory = f"{max(512, namespaces * 8 // servers + 8)}Gi"
    pool = {
        "clusters": [
            {
                "name": "dc1",
                "kubernetes_version": "1.31",
                "overcommit": {"cpu": 2.0, "memory": 1.0, "gpu": 1.0},
                "node_pools": [
                    {
                        "name": "general",
                        "labels": {"pool.example.com/hardware": "r650"},
                        "nodes": [{"name": f"srv-{i:04d}", "cpu": 64, "memory": memory} for i in range(servers)],
                    },
                    {
                        "name": "edge-lab",
                        "taints": [{"key": "pool.example.com/dedicated", "value": "edge", "effect": "NoSchedule"}],
                        "nodes": [{"name": "srv-edge-01", "cpu": 32, "memory": "128Gi"}],
                    },
                ],
                "storage_tiers": [
                    {"name": "hot", "provisioner": "rbd.csi.ceph.com", "capacity": f"{namespaces * 10 + 1024}Gi"},
                    {"name": "cold", "provisioner": "rbd.csi.ceph.com", "capacity": "500Ti"},
                    {"name": "archive", "provisioner": "cephfs.csi.ceph.com", "capacity": "500Ti"},
                ],
                "network": {"load_balancer_ranges": [str(LB_RANGE)]},
            }
        ]
    }
    (root / "pool.yaml").write_text(yaml.safe_dump(pool, sort_keys=False), encoding="utf-8")
    shutil.copy(REPO / "catalog" / "rates.yaml", root / "rates.yaml")
    units_dir = root / "business-units"
    units_dir.mkdir()
    slices = LB_RANGE.subnets(new_prefix=30)
    for u in range(units):
        unit_id = f"bu-{u:04d}"
        previous = f"api-{(u - 1) % units:04d}"
        unit = {
            "id": unit_id,
            "display_name": f"Business unit {u}",
            "cost_center": f"CC-{5000 + u}",
            "owners": [f"{unit_id}-admins"],
            "viewers": [f"{unit_id}-devs", "finance-readers"],
            "budget": {"monthly": 10000},
            "load_balancer_addresses": [str(next(slices))],
            "namespaces": [
                {
                    "name": f"{unit_id}-ns{n}",
                    "node_pool": "general",
                    "quota": {
                        "cpu": 2,
                        "memory": "8Gi",
                        "storage": {"hot": "10Gi"},
                        "load_balancers": 1 if n == 0 else 0,
                        "pods": 50,
                    },
                    "exposes": (
                        [{"name": f"api-{u:04d}", "ports": [8443], "pod_selector": {"app": "api"}}] if n == 0 else []
                    ),
                    "consumes": [previous] if n == 1 and units > 1 else [],
                }
                for n in range(per_unit)
            ],
        }
        (units_dir / f"{unit_id}.yaml").write_text(yaml.safe_dump(unit, sort_keys=False), encoding="utf-8")


def sdk_floor_seconds(count: int) -> float:
    """Seconds for `count` bare Namespaces under the same mocks: the SDK's own cost per resource."""
    import pulumi_kubernetes as k8s

    def program() -> None:
        for i in range(count):
            k8s.core.v1.Namespace(f"floor-{i}", metadata={"name": f"floor-{i}", "labels": {"a": "b", "c": "d"}})

    started = time.perf_counter()
    run_pulumi(program)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=500)
    parser.add_argument("--namespaces-per-unit", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="infra-scale-") as tmp:
        root = Path(tmp)
        write_catalog(root, args.units, args.namespaces_per_unit)
        started = time.perf_counter()
        catalog = load_catalog(root)
        loaded = time.perf_counter()
        cpu_before = time.process_time()
        resources = run_program(catalog, "dc1")
        finished = time.perf_counter()
        cpu_seconds = time.process_time() - cpu_before
        floor = sdk_floor_seconds(len(resources))
    namespaces = args.units * args.namespaces_per_unit
    seconds = finished - loaded
    rate = len(resources) / seconds
    # Scale the measured time to the goal's 2,000 namespaces, then compare with the 20 s allowed.
    projected = seconds * GOAL_NAMESPACES / namespaces
    print(f"catalog: {args.units} units × {args.namespaces_per_unit} namespaces = {namespaces} namespaces")
    print(f"catalog load and checks: {loaded - started:.2f} s")
    print(f"resources built under mocks: {len(resources)}")
    print(f"program run: {seconds:.2f} s wall, {cpu_seconds:.2f} s CPU, {rate:,.0f} resources/s")
    print(
        f"SDK floor: {len(resources)} bare Namespaces under the same mocks in {floor:.2f} s "
        f"({floor / len(resources) * 1000:.2f} ms each); program/floor = {seconds / floor:.2f}"
    )
    print(f"load average (1 min) at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    print(
        f"goal: {GOAL_NAMESPACES} namespaces in ≤ {GOAL_SECONDS:.0f} s; "
        f"time/goal = {projected / GOAL_SECONDS:.2f} ({'met' if projected <= GOAL_SECONDS else 'missed'})"
    )


if __name__ == "__main__":
    main()
