"""A namespace's `ingress: {ports}` and `quota.node_ports` as the catalog refuses them: file, field, line, fix."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pool_catalog import CatalogError, load_catalog
from tests.support.catalog_edit import copy_example, edit_yaml

DI = "business-units/data-insight.yaml"


def on_di_api(key: str, value: Any) -> Callable[[Any], None]:
    def apply(doc: Any) -> None:
        doc["namespaces"][0][key] = value

    return apply


@pytest.mark.parametrize(
    ("edit", "field", "message"),
    [
        (on_di_api("ingress", {"ports": []}), "namespaces[0].ingress.ports", "at least 1 item"),
        (on_di_api("ingress", {"ports": [0]}), "namespaces[0].ingress.ports", "port 0 is outside 1-65535"),
        (on_di_api("ingress", {"ports": [70000]}), "namespaces[0].ingress.ports", "outside 1-65535"),
        (on_di_api("ingress", {"ports": [8080, 8080]}), "namespaces[0].ingress.ports", "list each once"),
        (on_di_api("ingress", {"ports": ["http"]}), "namespaces[0].ingress.ports[0]", "integer"),
        (on_di_api("ingress", {"hosts": ["a.example.com"]}), "namespaces[0].ingress.hosts", "unknown field"),
        (on_di_api("ingress", {}), "namespaces[0].ingress.ports", "required"),
    ],
)
def test_bad_ingress_ports_are_refused_with_file_field_and_line(
    tmp_path: Path, edit: Callable[[Any], None], field: str, message: str
) -> None:
    catalog = copy_example(tmp_path)
    edit_yaml(catalog / DI, edit)
    with pytest.raises(CatalogError) as caught:
        load_catalog(catalog)
    (finding,) = [f for f in caught.value.findings if f.field == field]
    assert finding.file == str(catalog / DI) and finding.line is not None
    line = (catalog / DI).read_text(encoding="utf-8").splitlines()[finding.line - 1]
    wanted = "- http" if field.endswith("[0]") else field.rsplit(".", 1)[-1] + ":"  # the value, or its key
    assert wanted in line or "ingress:" in line, line
    assert message in finding.message


def test_node_ports_must_be_a_count(tmp_path: Path) -> None:
    catalog = copy_example(tmp_path)
    edit_yaml(catalog / DI, lambda doc: doc["namespaces"][0]["quota"].update({"node_ports": -1}))
    with pytest.raises(CatalogError) as caught:
        load_catalog(catalog)
    (finding,) = caught.value.findings
    assert finding.field == "namespaces[0].quota.node_ports" and "greater than or equal to 0" in finding.message
