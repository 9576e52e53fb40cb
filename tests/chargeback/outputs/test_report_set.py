"""Reports published as one set: people's files survive, a failure or a kill at any point leaves the old or
the new set whole, and the next run removes what a killed run left behind.

The kill tests run the writer in a child process that kills itself (SIGKILL, or SIGTERM) just before its
k-th change to the file system, for every k of a run; the CLI test kills `chargeback invoice` at random
moments against a real Prometheus."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from chargeback.errors import OutputError
from chargeback.outputs.report_set import CURRENT, MANIFEST, STATE_DIR, link_target, manifest_files, publish
from tests.support.prometheus import ScenarioServer, invoice_args

ROOT = Path(__file__).resolve().parents[3]

OLD = {"usage.csv": "old usage\n", "invoices/a.json": '{"a": 1}\n', "invoices/gone.json": '{"gone": 1}\n'}
NEW = {"usage.csv": "new usage\n", "invoices/a.json": '{"a": 2}\n', "invoices/new-unit.json": '{"n": 2}\n'}
PEOPLES = {
    "invoices/platform-signed.pdf": b"%PDF-1.7 signed by finance",
    "approval.json": b'{"approved_by": "cfo"}',
    "cover-letter.txt": b"Dear units,",
}


def stage_of(files: dict[str, str]):
    def stage(folder: Path) -> list[str]:
        for name, content in files.items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_text(content, encoding="utf-8")
        return list(files)

    return stage


def visible(out: Path) -> dict[str, str]:
    """The published set as a reader sees it through the top-level paths, checked against the manifest."""
    document = json.loads((out / STATE_DIR / CURRENT / MANIFEST).read_text(encoding="utf-8"))
    seen = {}
    for name, digest in document["files"].items():
        data = (out / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == digest, name
        seen[name] = data.decode()
    return seen


def assert_clean(out: Path) -> None:
    """After a finished run: one run folder, the pointer and the lock; no staging, no dangling link."""
    entries = sorted(p.name for p in (out / STATE_DIR).iterdir())
    assert len(entries) == 3 and CURRENT in entries and "lock" in entries, entries
    for path in out.rglob("*"):
        if path.is_symlink():
            assert path.exists(), f"dangling link {path}"


def put_peoples_files(out: Path) -> None:
    for name, data in PEOPLES.items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_bytes(data)


def test_people_files_survive_and_earlier_reports_go(tmp_path: Path) -> None:
    out = tmp_path / "2026-10"
    publish(out, stage_of(OLD))
    put_peoples_files(out)
    written = publish(out, stage_of(NEW))
    assert written == [out / name for name in sorted(NEW)]
    assert visible(out) == NEW
    assert not (out / "invoices" / "gone.json").exists() and not (out / "invoices" / "gone.json").is_symlink()
    for name, data in PEOPLES.items():
        assert (out / name).read_bytes() == data, name
    assert manifest_files(out) == sorted(NEW)
    assert os.readlink(out / "invoices" / "a.json") == link_target("invoices/a.json")
    assert_clean(out)


def test_earlier_layout_files_are_replaced_and_others_kept(tmp_path: Path) -> None:
    """Reports written before manifests existed are real files: replaced once; other files stay."""
    out = tmp_path / "reports"
    (out / "invoices").mkdir(parents=True)
    (out / "usage.csv").write_text("written by an older version\n", encoding="utf-8")
    (out / "invoices" / "retired-unit.json").write_text("{}", encoding="utf-8")
    publish(out, stage_of(NEW))
    assert visible(out) == NEW
    assert (out / "invoices" / "retired-unit.json").read_text(encoding="utf-8") == "{}"


def test_a_file_in_the_way_of_a_report_is_an_error_not_a_deletion(tmp_path: Path) -> None:
    out = tmp_path / "reports"
    publish(out, stage_of(OLD))
    (out / "invoices" / "new-unit.json").write_text("a person's file", encoding="utf-8")
    with pytest.raises(OutputError, match=r"new-unit.json is in the way of a report .* move it away"):
        publish(out, stage_of(NEW))
    assert (out / "invoices" / "new-unit.json").read_text(encoding="utf-8") == "a person's file"
    assert visible(out) == OLD
    assert_clean(out)


def test_failure_while_switching_keeps_the_old_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A folder that refuses new entries (read-only invoices/, a full disk) fails before the switch."""
    out = tmp_path / "reports"
    publish(out, stage_of(OLD))
    real_symlink = os.symlink

    def refuse(target: str, path: str | Path, *args: object, **kwargs: object) -> None:
        if Path(path).parent == out / "invoices":
            raise PermissionError(13, "Permission denied", str(path))
        real_symlink(target, path, *args, **kwargs)

    monkeypatch.setattr(os, "symlink", refuse)
    with pytest.raises(OutputError, match=r"cannot publish the reports .* Permission denied"):
        publish(out, stage_of(NEW))
    monkeypatch.undo()
    assert visible(out) == OLD
    assert_clean(out)


def test_two_runs_on_one_folder_are_refused(tmp_path: Path) -> None:
    out = tmp_path / "reports"

    def nested(folder: Path) -> list[str]:
        with pytest.raises(OutputError, match="another chargeback run is writing to"):
            publish(out, stage_of(NEW))
        return stage_of(OLD)(folder)

    publish(out, nested)
    assert visible(out) == OLD


def test_names_must_stay_in_the_folder(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="would leave the report folder"):
        publish(tmp_path / "r", lambda folder: ["../escape.csv"])
    assert sorted(p.name for p in tmp_path.iterdir()) == [], "nothing is left of a run that published nothing"


# ------------------------------------------------------------------ kills at every step

CHILD = textwrap.dedent(
    """
    import json, os, signal, sys
    from pathlib import Path
    from chargeback.outputs.report_set import publish

    out, files, kill_at, signame = Path(sys.argv[1]), json.loads(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    calls = [0]

    def killing(function):
        def wrapper(*args, **kwargs):
            calls[0] += 1
            if calls[0] == kill_at:
                os.kill(os.getpid(), getattr(signal, signame))
            return function(*args, **kwargs)
        return wrapper

    for name in ("symlink", "replace", "rename", "unlink", "rmdir", "mkdir"):
        setattr(os, name, killing(getattr(os, name)))

    def stage(folder):
        for name, content in files.items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_text(content, encoding="utf-8")
        return list(files)

    publish(out, stage)
    print("calls", calls[0])
    """
)


def run_child(out: Path, files: dict[str, str], kill_at: int, signame: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", CHILD, str(out), json.dumps(files), str(kill_at), signame],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("signame", ["SIGKILL", "SIGTERM"])
def test_killed_at_every_step_leaves_old_or_new_set_and_next_run_cleans(tmp_path: Path, signame: str) -> None:
    base = tmp_path / "base"
    publish(base, stage_of(OLD))
    put_peoples_files(base)
    done = run_child(tmp_path / "count", NEW, 0, signame)
    assert done.returncode == 0, done.stderr
    steps = int(done.stdout.split()[-1])
    assert steps > 10
    outcomes = set()
    for kill_at in range(1, steps + 1):
        out = tmp_path / f"kill-{kill_at}"
        subprocess.run(["cp", "-a", str(base), str(out)], check=True)
        killed = run_child(out, NEW, kill_at, signame)
        assert killed.returncode == -getattr(signal, signame), (kill_at, killed.stderr)
        after_kill = visible(out)
        assert after_kill in (OLD, NEW), kill_at
        outcomes.add("new" if after_kill == NEW else "old")
        publish(out, stage_of(NEW))  # the next run
        assert visible(out) == NEW, kill_at
        assert_clean(out)
        for name, data in PEOPLES.items():
            assert (out / name).read_bytes() == data, (kill_at, name)
        assert not (out / "invoices" / "gone.json").is_symlink(), kill_at
    assert outcomes == {"old", "new"}


# ------------------------------------------------------------------ the real command, killed


@pytest.mark.prometheus
def test_chargeback_invoice_killed_at_random_moments(priced_prometheus: ScenarioServer, tmp_path: Path) -> None:
    out = tmp_path / "2026-10"

    def args(mode: str) -> list[str]:
        command = invoice_args(priced_prometheus.url, out, "--billing-mode", mode)
        return [sys.executable, "-m", "chargeback.cli", *command]

    def run(mode: str) -> float:
        started = time.monotonic()
        done = subprocess.run(args(mode), capture_output=True, text=True, cwd=ROOT, timeout=300, check=False)
        assert done.returncode == 0, done.stderr + done.stdout
        return time.monotonic() - started

    run("request")
    new = visible(out)
    duration = run("usage")
    old = visible(out)
    assert new != old
    chooser = random.Random(20261001)
    for round_number in range(4):
        signum = (signal.SIGKILL, signal.SIGTERM)[round_number % 2]
        process = subprocess.Popen(args("request"), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(chooser.uniform(0.3 * duration, 1.1 * duration))
        process.send_signal(signum)
        process.wait(timeout=60)
        assert visible(out) in (old, new), round_number
        back = subprocess.run(args("usage"), capture_output=True, text=True, cwd=ROOT, timeout=300, check=False)
        assert back.returncode == 0, back.stderr
        assert visible(out) == old
        assert_clean(out)
