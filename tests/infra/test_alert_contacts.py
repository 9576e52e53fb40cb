"""Hostile alert contacts: refused by `pool validate` with file, field and line, never written into
alertmanager.yml; secrets only named by file, and a config naming them passes Debian's `amtool check-config`.

What Alertmanager itself refuses is taken from amtool 0.25 on this machine (it loads the file with the same
config package as the server: prometheus/alertmanager config/config.go, parseURL over Go's net/url.Parse):
a control character anywhere, a space in the host and a bad %-escape fail the whole file.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from infra.alerts import ALERTMANAGER_FILE, alertmanager_config
from infra.cli import app
from pool_catalog import load_catalog
from tests.infra.test_alerts import amtool
from tests.support.catalog_edit import copy_example, edit_yaml

POOL = "pool.yaml"
DI = "business-units/data-insight.yaml"
BRIDGE = "http://prometheus-webhook-dingtalk.monitoring.svc:8060/dingtalk/data-insight/send"


def di_contact(index: int, **contact: Any) -> Callable[[Any], None]:
    def apply(doc: Any) -> None:
        doc["alerts"]["contacts"][index] = contact

    return apply


def email_server(**fields: Any) -> Callable[[Any], None]:
    def apply(doc: Any) -> None:
        doc["alerting"]["email"].update(fields)

    return apply


# (file, change, field named, words of the message, text that must never be printed)
HOSTILE = [
    pytest.param(DI, di_contact(1, kind="dingtalk", url=BRIDGE + "\n"), "alerts.contacts[1].url",
                 ["a newline at character", "whole alertmanager.yml"], None, id="newline"),
    pytest.param(DI, di_contact(1, kind="dingtalk", url=BRIDGE.replace("/send", "/se\tnd")), "alerts.contacts[1].url",
                 ["a tab at character"], None, id="tab"),
    pytest.param(DI, di_contact(1, kind="webhook", url="http://alert bridge.monitoring.svc/hook"),
                 "alerts.contacts[1].url", ["a space at character 13"], None, id="space-in-host"),
    pytest.param(DI, di_contact(1, kind="webhook", url="http://bridge.monitoring.svc/hook%zz"),
                 "alerts.contacts[1].url", ["% not followed by two hex digits"], None, id="bad-escape"),
    pytest.param(DI, di_contact(1, kind="webhook", url="http://bridge.monitoring.svc:99999/hook"),
                 "alerts.contacts[1].url", ["not a URL Alertmanager can post to"], None, id="port"),
    pytest.param(DI, di_contact(1, kind="webhook", url="http://bridge{1}.monitoring.svc/hook"),
                 "alerts.contacts[1].url", ["is not a DNS name or an IP address"], None, id="host-characters"),
    pytest.param(DI, di_contact(1, kind="webhook", url="https://oncall:Hunter2Pass@bridge.example.com/hook"),
                 "alerts.contacts[1].url", ["user name or password", "credentials_file: /etc/alertmanager/secrets/"],
                 "Hunter2Pass", id="user-password"),
    pytest.param(DI, di_contact(1, kind="dingtalk", url="https://bridge.example.com/robot/send?access_token=9f8e7d6c5b"),
                 "alerts.contacts[1].url", ["credential in its query (access_token)", "access_token=***",
                                            "credentials_file"], "9f8e7d6c5b", id="access-token"),
    pytest.param(DI, di_contact(1, kind="wecom", url="http://bridge.example.com/hook?team=di&apiKey=XyZ123abc"),
                 "alerts.contacts[1].url", ["(apiKey)"], "XyZ123abc", id="api-key"),
    pytest.param(DI, di_contact(1, kind="wecom", url="https://qyapi.weixin.qq.com/cgi-bin/webhook/send"),
                 "alerts.contacts[1].url", ["the WeCom robot's own address", "bridge"], None, id="robot-url"),
    pytest.param(DI, di_contact(1, kind="webhook", url=BRIDGE, token="s3cr3t-token-value"), "alerts.contacts[1]",
                 ["`token` would put a secret into the catalog", "credentials_file"], "s3cr3t-token-value",
                 id="inline-token"),
    pytest.param(DI, di_contact(1, kind="webhook", url_file="/etc/alertmanager/secrets/di"), "alerts.contacts[1]",
                 ["`url_file` is not read by the Alertmanager", "credentials_file"], None, id="url-file"),
    pytest.param(DI, di_contact(1, kind="webhook", url=BRIDGE, credentials_file="secrets/di"),
                 "alerts.contacts[1].credentials_file", ["not an absolute file path"], None, id="relative-file"),
    pytest.param(DI, di_contact(0, kind="email", to="data-insight-oncall@group.example.com\n"), "alerts.contacts[0]",
                 ["is not one e-mail address"], None, id="email-newline"),
    pytest.param(POOL, email_server(sender="resource-pool@group.example.com\n"), "alerting.email.sender",
                 ["is not an e-mail address"], None, id="sender-newline"),
    pytest.param(POOL, email_server(auth_username="pool", auth_password="Sm7pPassw0rd"), "alerting.email",
                 ["`auth_password` would put a secret", "auth_password_file: /etc/alertmanager/secrets/smtp"],
                 "Sm7pPassw0rd", id="smtp-password"),
]  # fmt: skip


@pytest.mark.parametrize(("file", "edit", "field", "words", "secret"), HOSTILE)
def test_a_hostile_contact_is_refused_at_validate(
    tmp_path: Path, file: str, edit: Callable[[Any], None], field: str, words: list[str], secret: str | None
) -> None:
    catalog = copy_example(tmp_path)
    edit_yaml(catalog / file, edit)
    result = CliRunner().invoke(app, ["validate", "--catalog", str(catalog)])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if f"{catalog / file}:" in line and f" {field}: " in line]
    assert lines, result.output
    (line_number,) = {int(line.split(f"{catalog / file}:", 1)[1].split(":", 1)[0]) for line in lines}
    key = field.rsplit(".", 1)[-1].split("[")[0]
    pointed = (catalog / file).read_text(encoding="utf-8").splitlines()[line_number - 1]
    assert key in pointed or "- " in pointed or "email:" in pointed, pointed
    for word in words:
        assert word in result.output, (word, result.output)
    if secret is not None:
        assert secret not in result.output
    # And nothing is rendered from it.
    out = tmp_path / "alerting"
    render = CliRunner().invoke(app, ["alerts", "render", "--out", str(out), "--catalog", str(catalog)])
    assert render.exit_code == 2 and not (out / ALERTMANAGER_FILE).exists()


def check_config(text: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "alertmanager.yml"
    path.write_text(text, encoding="utf-8")
    return subprocess.run([amtool(), "check-config", str(path)], capture_output=True, text=True, check=False)


@pytest.mark.parametrize(
    "url",
    [BRIDGE + "\n", BRIDGE.replace("/send", "/se\tnd"), "http://alert bridge.monitoring.svc/hook", BRIDGE + "%zz"],
    ids=["newline", "tab", "space-in-host", "bad-escape"],
)
def test_what_the_catalog_refuses_alertmanager_would_refuse_for_every_unit(tmp_path: Path, url: str) -> None:
    """The reproduction: one unit's contact, had it been written out, fails the whole file (all routes)."""
    config = alertmanager_config(load_catalog(copy_example(tmp_path)))
    unit = next(r for r in config["receivers"] if r["name"] == "unit-data-insight")
    unit["webhook_configs"][0]["url"] = url
    result = check_config(yaml.safe_dump(config), tmp_path)
    assert result.returncode != 0
    assert "FAILED" in result.stdout + result.stderr


def test_secrets_named_by_file_render_and_pass_amtool(tmp_path: Path) -> None:
    catalog = copy_example(tmp_path)
    edit_yaml(
        catalog / DI,
        di_contact(1, kind="webhook", url="https://oncall.example.com/hooks/data-insight",
                   credentials_file="/etc/alertmanager/secrets/data-insight-oncall"),
    )  # fmt: skip
    edit_yaml(
        catalog / POOL,
        email_server(auth_username="resource-pool", auth_password_file="/etc/alertmanager/secrets/smtp"),
    )
    config = CliRunner().invoke(app, ["alerts", "render", "--out", str(tmp_path / "out"), "--catalog", str(catalog)])
    assert config.exit_code == 0, config.output
    text = (tmp_path / "out" / ALERTMANAGER_FILE).read_text(encoding="utf-8")
    rendered = yaml.safe_load(text)
    unit = next(r for r in rendered["receivers"] if r["name"] == "unit-data-insight")
    assert unit["webhook_configs"][0] == {
        "url": "https://oncall.example.com/hooks/data-insight",
        "send_resolved": True,
        "http_config": {"authorization": {"credentials_file": "/etc/alertmanager/secrets/data-insight-oncall"}},
    }
    assert rendered["global"]["smtp_auth_username"] == "resource-pool"
    assert rendered["global"]["smtp_auth_password_file"] == "/etc/alertmanager/secrets/smtp"
    result = subprocess.run(
        [amtool(), "check-config", str(tmp_path / "out" / ALERTMANAGER_FILE)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_url_file_is_refused_because_alertmanager_0_25_refuses_it(tmp_path: Path) -> None:
    """Why the catalog offers credentials_file and not url_file: the Alertmanager checked here has no such field."""
    config = alertmanager_config(load_catalog(copy_example(tmp_path)))
    unit = next(r for r in config["receivers"] if r["name"] == "unit-data-insight")
    unit["webhook_configs"][0] = {"url_file": "/etc/alertmanager/secrets/data-insight"}
    result = check_config(yaml.safe_dump(config), tmp_path)
    assert result.returncode != 0 and "url_file not found" in result.stdout + result.stderr
