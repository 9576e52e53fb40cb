"""Errors of the chargeback package: every one says what went wrong, where, and how to fix it."""

from __future__ import annotations


class ChargebackError(Exception):
    """Base of every chargeback error; the command line prints it and exits with status 2."""


class PeriodError(ChargebackError):
    """A billing period that is not a calendar month written YYYY-MM."""


class RatingError(ChargebackError):
    """Usage cannot be priced: a missing price, an unknown storage class, a malformed frame."""


class OutputError(ChargebackError):
    """Reports could not be written to the output directory."""
