"""`pool request`: a business unit's request for a namespace or a quota change, checked before it becomes a
pull request.

- `model`: flags and/or a request file → a validated `NamespaceRequest`;
- `edit`: the unit's YAML edited by round trip, and its atomic write;
- `decide`: the edit applied to a copy of the catalog, then capacity, budget and policies checked once each,
  every problem a typed `Refusal`; the budget against `pool_catalog.estimate`'s projection;
- `history`: `--history`, an issued month's invoice JSON read into a typed `UnitHistory`;
- the command itself (flags, printing) is `infra.cli.request`.
"""

from .decide import Decision, Refusal, evaluate
from .model import NamespaceRequest, QuotaRequest, parse_request

__all__ = ["Decision", "NamespaceRequest", "QuotaRequest", "Refusal", "evaluate", "parse_request"]
