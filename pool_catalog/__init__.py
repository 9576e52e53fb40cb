"""The catalog: one reviewed source of truth for what is provisioned and what is billed."""

from .errors import CatalogError, Finding, Severity
from .loader import load_catalog
from .models import Catalog

__all__ = ["Catalog", "CatalogError", "Finding", "Severity", "load_catalog"]
