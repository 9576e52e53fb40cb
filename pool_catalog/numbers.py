"""How a figure is written for people: one format for CLI tables, HTML reports, charts, the demo and `pool`
messages — thousands separated by ",", "." before the decimals, money to its currency's minor unit, half-even
rounding as on an invoice line. CSV and JSON keep machine text (`format(value, "f")`, no separators).

A leaf module (it imports nothing of the package), so `quantities` and `pricing` can both use it.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

# ISO 4217 currencies without a minor unit; every other code is taken to have cents.
_ZERO_DECIMAL_CURRENCIES = {
    "BIF",
    "CLP",
    "DJF",
    "GNF",
    "ISK",
    "JPY",
    "KMF",
    "KRW",
    "PYG",
    "RWF",
    "UGX",
    "VND",
    "VUV",
    "XAF",
    "XOF",
    "XPF",
}


def minor_unit(currency: str) -> Decimal:
    """Smallest amount of `currency` that appears on an invoice (0.01, or 1 for JPY…)."""
    return Decimal(1) if currency in _ZERO_DECIMAL_CURRENCIES else Decimal("0.01")


def money_places(currency: str) -> int:
    """Decimal places of the currency's minor unit (2 for CNY, 0 for JPY)."""
    return -minor_unit(currency).as_tuple().exponent


def format_number(
    value: Decimal | float | int | str,
    places: int | None = None,
    *,
    sign: bool = False,
    trim: bool = False,
    rounding: str = ROUND_HALF_EVEN,
) -> str:
    """`value` with thousands separators: 12345.6 → "12,345.60" with `places=2`. `places` None keeps a
    Decimal's own places (an invoice amount as it is); `trim` drops trailing zeros ("86.4", "512");
    `sign` writes "+" before positive numbers. A float goes through its shortest repr, never binary noise."""
    number = value if isinstance(value, Decimal) else Decimal(repr(value) if isinstance(value, float) else value)
    if places is not None:
        number = number.quantize(Decimal(1).scaleb(-places), rounding=rounding)
    if trim:
        number = number.normalize() if number else Decimal(0)
        if number == number.to_integral_value():
            number = number.quantize(Decimal(1))
    return f"{number:{'+' if sign else ''},f}"


def format_money(amount: Decimal | str, currency: str, *, sign: bool = False) -> str:
    """An amount of `currency` rounded half-even to its minor unit: "33,135.00" (CNY), "4,136" (JPY)."""
    return format_number(Decimal(amount), money_places(currency), sign=sign)


def format_percent(share: Decimal | float | str, places: int = 1, *, sign: bool = False) -> str:
    """A share as a percentage: 0.5234 → "52.3 %" ("+5.3 %" with `sign`)."""
    number = Decimal(repr(share)) if isinstance(share, float) else Decimal(share)
    return f"{format_number(number * 100, places, sign=sign)} %"
