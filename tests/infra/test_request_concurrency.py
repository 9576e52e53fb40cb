"""Two `pool request --write` on one unit never lose a request: the unit file is locked and read again.

The lost update this guards against: both requests read the unit file, both decide, both write — the second
write replaces the first, and both report success. Now the second finds the file changed under the lock and
writes nothing, with a message to run again.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import subprocess
import sys
from pathlib import Path

import pytest

from infra.errors import RequestError
from infra.request import NamespaceRequest, edit, evaluate
from pool_catalog import load_catalog
from tests.support.catalog_edit import copy_example

AT = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
UNIT = "community-services"


def new_namespace(name: str) -> NamespaceRequest:
    return NamespaceRequest.model_validate(
        {"unit": UNIT, "name": name, "node_pool": "general", "quota": {"cpu": 1, "memory": "1Gi"}}
    )


def test_a_request_decided_on_a_file_that_changed_since_is_not_written(tmp_path: Path) -> None:
    catalog = load_catalog(copy_example(tmp_path))
    first, second = (evaluate(catalog, new_namespace(name), at=AT) for name in ("cs-first", "cs-second"))
    assert first.accepted and second.accepted
    first.write()
    with pytest.raises(RequestError, match=r"changed after this request read it.*nothing was written"):
        second.write()
    text = first.file.read_text(encoding="utf-8")
    assert "cs-first" in text and "cs-second" not in text


def test_a_write_waits_a_bounded_time_for_the_lock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    catalog = load_catalog(copy_example(tmp_path))
    decision = evaluate(catalog, new_namespace("cs-waiting"), at=AT)
    monkeypatch.setattr(edit, "LOCK_WAIT", 0.3)
    with decision.file.open("rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(RequestError, match="stayed locked by another pool request --write"):
            decision.write()
    assert "cs-waiting" not in decision.file.read_text(encoding="utf-8")
    decision.write()  # once the lock is free, the same decision is written
    assert "cs-waiting" in decision.file.read_text(encoding="utf-8")


def request_args(catalog: Path, name: str) -> list[str]:
    """`pool request --write` of a small new namespace `name` for the unit."""
    return ["request", "--catalog", str(catalog), "--at", "2026-11-01T00:00:00Z", "--unit", UNIT, "--namespace",
            name, "--node-pool", "general", "--cpu", "1", "--memory", "1Gi", "--write"]  # fmt: skip


def test_requests_written_at_once_by_separate_processes_are_never_lost(tmp_path: Path) -> None:
    catalog = copy_example(tmp_path)
    names = [f"cs-racer-{i}" for i in range(3)]
    processes = {
        name: subprocess.Popen(
            [sys.executable, "-c", "from infra.entry import main; main()", *request_args(catalog, name)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "COLUMNS": "200"},
        )
        for name in names
    }
    results = {name: (p.wait(timeout=300), *p.communicate()) for name, p in processes.items()}
    text = (catalog / "business-units" / f"{UNIT}.yaml").read_text(encoding="utf-8")
    succeeded = [name for name, (code, _, _) in results.items() if code == 0]
    assert succeeded, results
    for name, (code, stdout, stderr) in results.items():
        if code == 0:
            assert f"name: {name}\n" in text, f"{name} reported success but is not in the file: {stdout}"
        else:
            assert code == 2 and "run the request again" in " ".join(stderr.split()), stderr
            assert f"name: {name}\n" not in text
    assert "Traceback" not in "".join(stderr for _, _, stderr in results.values())
    assert load_catalog(catalog).owner_of(succeeded[0]).id == UNIT
