"""docs/ovms-v3.md: the mapping and command tables are the data of protocol/ovms_v3.

The tables between ``<!-- generated: NAME -->`` and ``<!-- end generated -->`` are
rendered here from ``metrics.MAPPING`` and ``commands.COMMANDS``; a change to the
data without the doc (or the other way round) fails. To rewrite the doc's tables
after changing the data: ``OVMS_WRITE_DOCS=1 pytest tests/test_v3_docs.py``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from protocol.ovms_v3 import commands, metrics
from protocol.ovms_v3.metrics import Convert, FieldSource

DOC = Path(__file__).resolve().parent.parent / "docs" / "ovms-v3.md"
SECTION = re.compile(r"(<!-- generated: (\w+) -->\n)(.*?)(<!-- end generated -->)", re.S)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _how(source: FieldSource) -> str:
    how = source.convert.text
    if source.convert is Convert.BIT:
        how = f"bit `{source.bit}`"
    elif source.convert in (Convert.WHEEL, Convert.WHEEL_PSI):
        how = f"{how}: element {source.index}"
    return _cell(how)


def mapping_table() -> str:
    rows = ["| v2 | field | v3 metric | how | default |", "|---|---|---|---|---|"]
    for source in metrics.MAPPING:
        names = ", ".join(f"`{m}`" for m in source.metrics) or "-"
        default = f"`{source.default}`" if source.default else "empty"
        rows.append(f"| {source.code} | {source.field} | {names} | {_how(source)} | "
                    f"{default} |")
    return "\n".join(rows) + "\n"


def tpms_table() -> str:
    rows = ["| Y series | v3 metric |", "|---|---|"]
    rows += [f"| {s.series} | `{s.metric}` |" for s in metrics.TPMS_SERIES]
    return "\n".join(rows) + "\n"


def numbers_table() -> str:
    rows = ["| metric | text | number |", "|---|---|---|"]
    for metric, table in (("v.c.state", metrics.CHARGE_STATES),
                          ("v.c.substate", metrics.CHARGE_SUBSTATES),
                          ("v.c.mode", metrics.CHARGE_MODES)):
        rows += [f"| `{metric}` | {text} | {n} |" for text, n in table.items()]
    return "\n".join(rows) + "\n"


def commands_table() -> str:
    rows = ["| v2 | what | shell command on the module |", "|---|---|---|"]
    for c in commands.COMMANDS:
        shell = c.shell.format(*(f"<{p.value}>" for p in c.params))
        rows.append(f"| {c.number} | {c.title} | `{shell}` |")
    return "\n".join(rows) + "\n"


def unsupported_table() -> str:
    rows = ["| v2 | why not |", "|---|---|"]
    rows += [f"| {n} | {_cell(why)} |"
             for n, why in sorted(commands.UNSUPPORTED_COMMANDS.items())]
    return "\n".join(rows) + "\n"


TABLES = {"mapping": mapping_table, "tpms": tpms_table, "numbers": numbers_table,
          "commands": commands_table, "unsupported": unsupported_table}


def test_doc_tables_are_the_data() -> None:
    text = DOC.read_text()
    found = {m.group(2): m.group(3) for m in SECTION.finditer(text)}
    assert set(found) == set(TABLES), "docs/ovms-v3.md generated sections"
    if os.environ.get("OVMS_WRITE_DOCS") == "1":
        DOC.write_text(SECTION.sub(lambda m: m.group(1) + TABLES[m.group(2)]() + m.group(4),
                                   text))
        pytest.skip("docs/ovms-v3.md tables rewritten")
    for name, render in TABLES.items():
        assert found[name] == render(), (
            f"docs/ovms-v3.md table {name!r} is not the data; "
            "rewrite it with OVMS_WRITE_DOCS=1 pytest tests/test_v3_docs.py")


def test_doc_has_the_sections_other_work_extends() -> None:
    headings = re.findall(r"^## (.+)$", DOC.read_text(), re.M)
    assert "Mapping" in headings and "Commands" in headings
