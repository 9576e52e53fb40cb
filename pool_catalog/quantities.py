"""Kubernetes quantities: parsed with the `kubernetes` package, formatted back canonically."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal
from typing import Annotated

from kubernetes.utils import parse_quantity
from pydantic import BeforeValidator, PlainSerializer

from .numbers import format_number

GIB = Decimal(2**30)
MAX_QUANTITY = Decimal(2**63 - 1)
"""Kubernetes stores a quantity's value in an int64 (k8s.io/apimachinery/pkg/api/resource/quantity.go):
anything larger cannot be a quota, a node's capacity or a claim."""
MAX_CORES = MAX_QUANTITY / 1000
"""CPU is kept in millicores, so cores must fit an int64 after multiplying by 1000."""
_BINARY_SUFFIXES = [("Ei", 2**60), ("Pi", 2**50), ("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)]


def parse(value: object) -> Decimal:
    """Parse a Kubernetes quantity ("500m", "128Gi", 4) into a non-negative Decimal."""
    if isinstance(value, bool) or value is None:
        raise ValueError(f"expected a Kubernetes quantity such as 4, 500m or 128Gi, got {value!r}")
    try:
        number = parse_quantity(value if isinstance(value, str) else str(value))
    except (ValueError, TypeError) as e:
        raise ValueError(f"{value!r} is not a Kubernetes quantity (examples: 4, 500m, 128Gi, 2Ti)") from e
    if not number.is_finite():
        raise ValueError(f"{value!r} is not a finite quantity (examples: 4, 500m, 128Gi, 2Ti)")
    if number < 0:
        raise ValueError(f"{value!r} is negative; quantities must be zero or more")
    if number > MAX_QUANTITY:
        raise ValueError(f"{value!r} is larger than Kubernetes can store (2^63-1); use a realistic size")
    return number


def parse_cores(value: object) -> Decimal:
    """CPU cores: a quantity that is a whole number of millicores (Kubernetes rounds finer values up,
    so "0.5m" would silently become "1m" there and "0m" in our manifests)."""
    cores = parse(value)
    if cores > MAX_CORES:
        raise ValueError(f"{value!r} is more cores than Kubernetes can store; use a realistic count")
    if (cores * 1000) != (cores * 1000).to_integral_value():
        raise ValueError(f"{value!r} is finer than a millicore; CPU is counted in whole millicores (e.g. 1m, 250m)")
    return cores


def parse_bytes(value: object) -> Decimal:
    """A size: a quantity that is a whole number of bytes."""
    size = parse(value)
    if size != size.to_integral_value():
        raise ValueError(f"{value!r} is not a whole number of bytes (e.g. 512Mi, 1.5Gi)")
    return size


def format_cpu(cores: Decimal) -> str:
    """Whole cores as "8", fractions as millicores "1500m"."""
    if cores == cores.to_integral_value():
        return str(int(cores))
    return f"{int((cores * 1000).to_integral_value())}m"


def format_bytes(size: Decimal) -> str:
    """Bytes with the largest binary suffix that divides them exactly ("128Gi", "1536Mi")."""
    whole = int(size)
    for suffix, factor in _BINARY_SUFFIXES:
        if whole and whole % factor == 0:
            return f"{whole // factor}{suffix}"
    return str(whole)


_HUMAN_BYTES = [("TiB", Decimal(2**40)), ("GiB", GIB), ("MiB", Decimal(2**20)), ("KiB", Decimal(2**10))]
_HUNDREDTH = Decimal("0.01")


def _decimals(value: Decimal, places: Decimal, rounding: str) -> str:
    """`value` to at most `places`, trailing zeros dropped, thousands separated: 86.40 → "86.4", 1536 → "1,536"."""
    return format_number(value, -places.as_tuple().exponent, trim=True, rounding=rounding)


def format_amount(resource: str, amount: Decimal, rounding: str = ROUND_HALF_EVEN) -> str:
    """An amount of a node or storage resource as people read it, the one format of every `pool` output:
    cpu in cores ("86.4 cores", exact to the millicore), memory and storage in the largest binary unit
    that shows them exactly in two decimals ("1.5 TiB", "1,632 GiB", "460.8 GiB"; else GiB rounded to
    two decimals), GPUs and other counts to two decimals (a limit less headroom: "1.2 GPUs").
    `rounding` (a decimal rounding mode) lets advice round down what is free, so it is safe to ask for."""
    if resource == "cpu":
        text = _decimals(amount, Decimal("0.001"), rounding)
        return f"{text} core" if text == "1" else f"{text} cores"
    if resource in ("memory", "storage"):
        reached = [(unit, factor) for unit, factor in _HUMAN_BYTES if abs(amount) >= factor]
        for unit, factor in reached:  # the largest unit that shows the amount exactly: 2 TiB, 1,632 GiB
            if (amount / factor).quantize(_HUNDREDTH) == amount / factor:
                return f"{_decimals(amount / factor, _HUNDREDTH, rounding)} {unit}"
        if reached:  # not exact in any: GiB (or below a GiB, the largest unit reached), rounded
            unit, factor = reached[1] if reached[0][0] == "TiB" else reached[0]
            return f"{_decimals(amount / factor, _HUNDREDTH, rounding)} {unit}"
        return f"{_decimals(amount, Decimal(1), rounding)} bytes" if amount else "0 GiB"
    text = _decimals(amount, _HUNDREDTH, rounding)  # a limit less headroom may be a fraction of a GPU
    if resource == "gpu":
        return f"{text} GPU" if text == "1" else f"{text} GPUs"
    return text


def _serialize_bytes(value: Decimal) -> str:
    return format_bytes(value)


def _serialize_cpu(value: Decimal) -> str:
    return format_cpu(value)


Cores = Annotated[Decimal, BeforeValidator(parse_cores), PlainSerializer(_serialize_cpu, return_type=str)]
"""CPU cores, written as a Kubernetes quantity (4, 500m)."""

Bytes = Annotated[Decimal, BeforeValidator(parse_bytes), PlainSerializer(_serialize_bytes, return_type=str)]
"""A size in bytes, written as a Kubernetes quantity (128Gi, 2Ti)."""
