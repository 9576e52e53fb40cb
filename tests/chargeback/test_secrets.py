"""No secret of the Prometheus connection reaches the books: invoices, reports, the ledger or the console.

Run against the closed-form scenario in a real Prometheus behind a proxy that requires basic auth, with the
ledger on SQLite and on a real PostgreSQL. Every file written, every ledger row and all output are searched
for the password: a URL with user:password is refused (without echoing it), the password given by file is
sent but never recorded, and a token file of the wrong shape is refused without printing its content.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from chargeback.cli import app
from tests.support.postgres import LocalPostgres, ledger_target, local_postgres
from tests.support.prometheus import invoice_args, serve_scenario
from tests.support.proxy import basic_auth_proxy

pytestmark = pytest.mark.prometheus

runner = CliRunner(env={"COLUMNS": "250"})
USER = "finance"
PASSWORD = "Zq7-s3cret-WXk"


@pytest.fixture(scope="module")
def protected(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The closed-form scenario in Debian's Prometheus, reachable only through a basic-auth proxy."""
    for server in serve_scenario(tmp_path_factory.mktemp("secrets-prometheus"), with_unpriced_storage=False):
        with basic_auth_proxy(server.url, USER, PASSWORD) as proxy:
            yield proxy


@pytest.fixture(scope="module")
def postgres() -> Iterator[LocalPostgres]:
    with local_postgres() as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    (tmp_path / "books").mkdir()
    return ledger_target(request.param, tmp_path / "books", lambda: request.getfixturevalue("postgres"))


def close_args(url: str, out: Path, ledger: str, *extra: str) -> list[str]:
    """`chargeback close` of October 2026, cluster dc1 of the example catalog."""
    return ["close", "--period", "2026-10", "--prometheus", url, "--out", str(out), "--ledger", ledger,
            "--cluster", "dc1", "--cluster-label", "cluster", *extra]  # fmt: skip


def with_credentials(url: str) -> str:
    return url.replace("http://", f"http://{USER}:{PASSWORD}@")


def password_file(folder: Path, content: str = PASSWORD + "\n") -> Path:
    path = folder / "secrets" / "prometheus-password"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content, encoding="utf-8")
    return path


def files_holding(folder: Path, secret: str, skip: Path) -> list[str]:
    """Every file under `folder` (links followed, SQLite's -wal/-journal included) whose bytes hold `secret`."""
    return [
        str(p)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and skip not in p.parents and secret.encode() in p.read_bytes()
    ]


def rows_holding(ledger: str, secret: str) -> list[str]:
    """Every row of every table of a PostgreSQL ledger that holds `secret` (as the row's JSON text)."""
    engine = sa.create_engine(ledger.replace("postgresql://", "postgresql+psycopg://"))
    found = []
    with engine.connect() as connection:
        tables = connection.exec_driver_sql(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        ).scalars()
        for table in list(tables):
            for (row,) in connection.exec_driver_sql(f'SELECT row_to_json(t)::text FROM "{table}" t'):
                if secret in row:
                    found.append(f"{table}: {row[:80]}")
    engine.dispose()
    return found


def test_a_url_with_a_password_is_refused_and_never_echoed(protected: str, ledger: str, tmp_path: Path) -> None:
    out = tmp_path / "books" / "2026-10"
    for args in (
        invoice_args(with_credentials(protected), out),
        close_args(with_credentials(protected), out, ledger),
        ["doctor", "--period", "2026-10", "--prometheus", with_credentials(protected) + "/?access_token=" + PASSWORD],
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, result.output
        assert PASSWORD not in result.output
        assert "--basic-auth-password-file" in result.output or "--bearer-token-file" in result.output
        assert "Traceback" not in result.output
    assert not out.exists()


def test_a_password_given_by_file_is_sent_but_never_recorded(protected: str, ledger: str, tmp_path: Path) -> None:
    secret = password_file(tmp_path)
    auth = ["--basic-auth-user", USER, "--basic-auth-password-file", str(secret)]
    invoiced = runner.invoke(app, invoice_args(protected, tmp_path / "books" / "invoiced", *auth))
    assert invoiced.exit_code == 0, invoiced.output
    closed = runner.invoke(
        app,
        close_args(protected, tmp_path / "books" / "2026-10", ledger, *auth),
    )
    assert closed.exit_code == 0, closed.output
    exported = runner.invoke(
        app, ["ledger", "export", "--ledger", ledger, "--format", "json", "--from", "2026-10", "--to", "2026-10"]
    )
    assert exported.exit_code == 0, exported.output
    assert protected in exported.output  # the server is recorded (without credentials) …
    for output in (invoiced.output, closed.output, exported.output):
        assert PASSWORD not in output  # … the password nowhere
    assert (tmp_path / "books" / "2026-10" / "focus.csv").is_file()
    assert files_holding(tmp_path, PASSWORD, skip=secret.parent) == []
    if ledger.startswith("postgresql"):
        assert rows_holding(ledger, PASSWORD) == []
    else:
        assert Path(ledger).is_file()


def test_a_wrong_password_fails_without_printing_it(protected: str, tmp_path: Path) -> None:
    wrong = "not-" + PASSWORD
    secret = password_file(tmp_path, wrong + "\n")
    auth = ["--basic-auth-user", USER, "--basic-auth-password-file", str(secret)]
    result = runner.invoke(app, invoice_args(protected, tmp_path / "out", *auth))
    assert result.exit_code == 2, result.output
    assert "HTTP 401" in result.output and wrong not in result.output


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ("first-half-of-a-token\nsecond-half-of-a-token\n", "has 2 lines"),
        ("a-token\n\n", "has 2 lines"),
        ("a token-with-a-space\n", "space or control character"),
        ("\n", "is empty"),
    ],
)
def test_a_token_file_of_the_wrong_shape_is_refused_without_its_content(
    protected: str, tmp_path: Path, content: str, says: str
) -> None:
    token = tmp_path / "token"
    token.write_text(content, encoding="utf-8")
    result = runner.invoke(app, invoice_args(protected, tmp_path / "out", "--bearer-token-file", str(token)))
    assert result.exit_code == 2, result.output
    assert says in result.output and "one line" in result.output
    for part in (p for p in content.split() if len(p) > 3):
        assert part not in result.output
    assert "Traceback" not in result.output


def test_settings_made_in_code_never_repeat_a_refused_url() -> None:
    """`run_period(…, "http://user:pass@host")` from a script: the validation error shows no password."""
    import pydantic

    from chargeback.collect.prometheus import PrometheusSettings

    with pytest.raises(pydantic.ValidationError) as raised:
        PrometheusSettings(url=f"http://{USER}:{PASSWORD}@127.0.0.1:9090")
    assert PASSWORD not in str(raised.value) and "--basic-auth-password-file" in str(raised.value)
