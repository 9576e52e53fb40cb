"""Where a catalog lives on disk and how a finding names a place in it: file names, field paths, line numbers.

Shared by the loader (which reads the files and then runs the checks) and the checks (which point back into
the files), so the checks need not import the loader: the dependency runs one way, loader -> checks -> files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

POOL_FILE = "pool.yaml"
RATES_FILE = "rates.yaml"
UNITS_DIR = "business-units"


def field_path(loc: tuple[int | str, ...]) -> str:
    """('namespaces', 0, 'quota', 'cpu') -> 'namespaces[0].quota.cpu'."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def line_of(document: Any, loc: tuple[int | str, ...]) -> int | None:
    """1-based line of the deepest node of `loc` that exists in the ruamel document."""
    node, line = document, None
    for part in loc:
        lc = getattr(node, "lc", None)
        try:
            if isinstance(part, int) and isinstance(node, list):
                if lc is not None and part < len(node):
                    line = lc.item(part)[0] + 1
                node = node[part]
            elif isinstance(node, dict) and part in node:
                if lc is not None:
                    line = lc.key(part)[0] + 1
                node = node[part]
            else:
                break
        except (KeyError, IndexError, TypeError):
            break
    if line is None and getattr(document, "lc", None) is not None:
        return None
    return line


def unit_file(root: str | Path, unit_id: str) -> Path:
    return Path(root) / UNITS_DIR / f"{unit_id}.yaml"
