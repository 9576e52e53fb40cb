"""One number format for people (pool_catalog.numbers): the same figure reads the same in a CLI table, an HTML
invoice, a chart, the finance summary, the demo summary and a `pool` message; CSV and JSON keep machine text."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from chargeback.outputs import charts
from chargeback.outputs.html import html_environment
from pool_catalog.numbers import format_money, format_number, format_percent, money_places

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "chargeback-2026-10"


@pytest.mark.parametrize(
    ("value", "kwargs", "text"),
    [
        (Decimal("33135"), {"places": 2}, "33,135.00"),
        (Decimal("1234567.891"), {"places": 2}, "1,234,567.89"),
        (Decimal("0.125"), {"places": 2}, "0.12"),  # half-even, as invoice lines round
        (Decimal("0.135"), {"places": 2}, "0.14"),
        (Decimal("-8522.675"), {"places": 2}, "-8,522.68"),
        (Decimal("5.3"), {"places": 1, "sign": True}, "+5.3"),
        (Decimal("86.400"), {"trim": True}, "86.4"),
        (Decimal("1E+3"), {"trim": True}, "1,000"),
        (Decimal("12.50"), {}, "12.50"),  # a Decimal keeps its own places
        (431181, {}, "431,181"),
        (0.1 + 0.2, {"places": 4}, "0.3000"),  # a float through its shortest repr
    ],
)
def test_format_number(value: object, kwargs: dict, text: str) -> None:
    assert format_number(value, **kwargs) == text


def test_money_follows_the_currency_minor_unit() -> None:
    assert (money_places("CNY"), money_places("JPY")) == (2, 0)
    assert format_money(Decimal("60000"), "CNY") == "60,000.00"
    assert format_money("4136.5", "JPY") == "4,136"  # half-even to the yen
    assert format_money(Decimal("2599.12"), "CNY", sign=True) == "+2,599.12"


def test_percent() -> None:
    assert format_percent(Decimal("0.5234")) == "52.3 %"
    assert format_percent(Decimal("-0.111"), sign=True) == "-11.1 %"
    assert format_percent(0.237) == "23.7 %"
    assert format_percent(Decimal("12.5")) == "1,250.0 %"


def test_reports_charts_and_messages_write_a_figure_the_same_way() -> None:
    """The HTML filters and the chart labels are the one helper, so a total reads alike everywhere."""
    env = html_environment("CNY")
    amount = Decimal("33135.004")
    assert env.filters["money"](amount) == format_money(amount, "CNY") == "33,135.00"
    assert env.filters["signed_money"]("-12.5") == "-12.50"
    assert env.filters["percent"](Decimal("0.552")) == "55.2 %"
    assert env.filters["quantity"]("1536.0004") == "1,536.000"
    assert charts.money_text(amount, 2) == "33,135.00"
    # The golden finance summary (written through the same filters) carries separated amounts.
    html = (GOLDEN / "finance-summary.html").read_text(encoding="utf-8")
    assert "," in html and "33135.00" not in html
