"""The spreadsheet CSVs start with a UTF-8 byte-order mark, so a spreadsheet tool reads 数据洞察事业部 intact;
rates.yaml `csv_bom: false` writes none; focus.csv, read by FOCUS tools, never has one."""

from __future__ import annotations

import codecs
import csv
import io
from pathlib import Path

import pytest

from chargeback.outputs.writer import write_reports
from chargeback.period import Period
from chargeback.rate.result import charge
from pool_catalog import load_catalog
from tests.support.catalog_edit import EXAMPLE_CATALOG, copy_example, edit_yaml
from tests.support.usage_frames import steady, usage_frame

OCT = Period.parse("2026-10")
SPREADSHEET_CSVS = ("usage.csv", "line_items.csv", "idle.csv")
DATA_INSIGHT = "数据洞察事业部 (Data Insight)"


def spreadsheet_open(data: bytes) -> list[dict[str, str]]:
    """A CSV opened the way a spreadsheet tool on a Chinese-locale Windows does: UTF-8 when the file starts with
    a byte-order mark, otherwise the system code page (GBK, cp936)."""
    if data.startswith(codecs.BOM_UTF8):
        content = data[len(codecs.BOM_UTF8) :].decode("utf-8")
    else:
        content = data.decode("gbk", errors="replace")
    return list(csv.DictReader(io.StringIO(content)))


def reports(catalog_dir: Path, out: Path) -> Path:
    rows = steady("di-api", "cpu", 2.0, OCT.start, OCT.hours, requested=4.0, allocated=24.0)
    rows += steady("cs-miniapp", "memory", 3.0, OCT.start, OCT.hours, requested=4.0, allocated=64.0)
    write_reports(charge(usage_frame(rows), load_catalog(catalog_dir), OCT), out)
    return out


@pytest.fixture(scope="module")
def default_reports(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return reports(EXAMPLE_CATALOG, tmp_path_factory.mktemp("bom") / "2026-10")


def test_spreadsheet_csvs_have_a_bom_and_the_chinese_names_read_intact(default_reports: Path) -> None:
    for name in SPREADSHEET_CSVS:
        assert (default_reports / name).read_bytes().startswith(codecs.BOM_UTF8), name
    lines = spreadsheet_open((default_reports / "line_items.csv").read_bytes())
    names = {row["business_unit"]: row["business_unit_name"] for row in lines}
    assert names == {"data-insight": DATA_INSIGHT, "community-services": "社区服务事业部 (Community Services)"}
    # The project's own readers see the same header with utf-8-sig, no stray mark in the first column.
    with (default_reports / "usage.csv").open(encoding="utf-8-sig") as stream:
        assert next(csv.reader(stream))[0] == "period"
    # FOCUS tools read plain UTF-8: no mark, the first column name is the spec's.
    focus = (default_reports / "focus.csv").read_bytes()
    assert focus.startswith(b"AllocatedMethodDetails,")
    assert DATA_INSIGHT.encode("utf-8") in focus


def test_csv_bom_false_writes_plain_utf8(default_reports: Path, tmp_path: Path) -> None:
    directory = copy_example(tmp_path)
    edit_yaml(directory / "rates.yaml", lambda doc: doc.__setitem__("csv_bom", False))
    plain = reports(directory, tmp_path / "plain")
    for name in SPREADSHEET_CSVS:
        data = (plain / name).read_bytes()
        assert not data.startswith(codecs.BOM_UTF8), name
        assert data == (default_reports / name).read_bytes()[len(codecs.BOM_UTF8) :], name
    # Without the mark the spreadsheet guesses the code page and garbles the name: what the option trades away.
    garbled = {row["business_unit_name"] for row in spreadsheet_open((plain / "line_items.csv").read_bytes())}
    assert DATA_INSIGHT not in garbled
    assert (plain / "focus.csv").read_bytes() == (default_reports / "focus.csv").read_bytes()
