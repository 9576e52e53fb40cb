"""The Prometheus connection flags: declared once from PrometheusSettings, the same on every command that
talks to Prometheus, and every bad value an exit-2 message naming its flag."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from chargeback.cli import app
from chargeback.collect.prometheus import PrometheusSettings
from chargeback.connection import CONNECTION_FLAGS, settings_from_flags
from pool_demo.local_prometheus import free_port
from tests.support.catalog_edit import EXAMPLE_CATALOG

runner = CliRunner()

PROMETHEUS_COMMANDS = ("invoice", "idle", "doctor", "serve", "close")

# What the flags were before they were generated: names, env vars and required-ness must not move.
FLAGS_BEFORE = {
    "--prometheus": ("PROMETHEUS_URL", True),
    "--bearer-token-file": (None, False),
    "--basic-auth-user": (None, False),
    "--basic-auth-password-file": (None, False),
    "--ca-bundle": (None, False),
    "--timeout": (None, False),
    "--chunk-hours": (None, False),
    "--deadline": (None, False),
    "--header": (None, False),
    "--stall": (None, False),
    "--retries": (None, False),
    "--retry-budget": (None, False),
    "--retry-share": (None, False),
}


def options_of(name: str) -> dict[str, Any]:
    """The options of command `name` as the command line parses them (typer's click objects)."""
    group: Any = typer.main.get_command(app)
    return {p.opts[0]: p for p in group.commands[name].params if p.param_type_name == "option"}


@pytest.mark.parametrize("name", PROMETHEUS_COMMANDS)
def test_every_command_has_the_connection_flags_of_the_model(name: str) -> None:
    options = options_of(name)
    for flag in CONNECTION_FLAGS:
        option = options[flag.flag]
        description = PrometheusSettings.model_fields[flag.field].description
        assert description and option.help and option.help.startswith(description), (name, flag.flag)
        assert option.help == flag.help()
        envvar, required = FLAGS_BEFORE[flag.flag]
        assert (option.envvar, option.required, option.default) == (envvar, required, None), (name, flag.flag)
    assert {f.flag for f in CONNECTION_FLAGS} == set(FLAGS_BEFORE)


def test_help_texts_show_the_models_defaults() -> None:
    options = options_of("invoice")
    assert options["--timeout"].help.endswith("(default 120 s)")
    assert options["--chunk-hours"].help.endswith("(default 24 hours)")
    assert options["--stall"].help.endswith("(default 30 s)")
    assert options["--retry-share"].help.endswith("(default 0.1)")
    assert options["--deadline"].help.endswith("(default 3600 s)")
    result = runner.invoke(app, ["idle", "--help"], env={"COLUMNS": "250"})
    assert "Base URL of the Prometheus (or Thanos/Mimir) API" in result.output


def test_flags_become_settings_and_only_given_ones_are_set() -> None:
    settings = settings_from_flags(
        {"url": "http://prom:9090/", "chunk": 2.0, "timeout": 30.0, "headers": ["X-Scope-OrgID=finance"]}
    )
    assert settings.url == "http://prom:9090"
    assert settings.chunk == dt.timedelta(hours=2)
    assert settings.timeout == 30.0
    assert settings.headers == {"X-Scope-OrgID": "finance"}
    assert settings.deadline == 3600.0 and "deadline" not in settings.model_fields_set


@pytest.mark.parametrize("name", ["invoice", "idle", "doctor", "serve", "close"])
@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--timeout", "-1"], "--timeout -1: give a positive number of s"),
        (["--deadline", "0"], "--deadline 0: give a positive number of s"),
        (["--chunk-hours", "9000"], "--chunk-hours 9000: give at most a year's hours (8784)"),
        (["--prometheus", "prometheus:9090"], "--prometheus 'prometheus:9090': Value error, 'prometheus:9090' is not"),
        (["--header", "X-Scope-OrgID"], "--header 'X-Scope-OrgID' is not K=V"),
    ],
)
def test_a_wrong_connection_value_is_an_exit_2_naming_the_flag(
    tmp_path: Path, name: str, flags: list[str], message: str
) -> None:
    args = [name, "--catalog", str(EXAMPLE_CATALOG), "--prometheus", f"http://127.0.0.1:{free_port()}"]
    if name in ("invoice", "idle", "close"):
        args += ["--period", "2026-10"]
    if name in ("invoice", "close"):
        args += ["--out", str(tmp_path / "out")]
    if name == "serve":
        args += ["--once"]
    if flags[0] in args:
        args[args.index(flags[0]) + 1] = flags[1]
    else:
        args += flags
    result = runner.invoke(app, args, terminal_width=250)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()
