"""Errors of the portal that a person fixes: bad settings at start (printed, exit 2) and refused actions."""

from __future__ import annotations

from pool_catalog.errors import UserError


class PortalError(UserError):
    """The portal cannot start or serve as configured; the message says which setting and how to fix it."""
