"""The layers of docs/architecture.md hold: every module of gateway/ is in exactly one
layer of the table there, and imports only from its own layer or the ones below."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "gateway"


def layer_table() -> dict[str, int]:
    """Entry (``server/``, ``cli.py``) -> layer number, from the doc's table."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    block = text.split("layer  name      modules\n", 1)[1].split("```", 1)[0]
    table: dict[str, int] = {}
    for line in block.strip().splitlines():
        number, _name, *entries = line.split()
        for entry in entries:
            assert entry not in table, f"{entry} is in two layers"
            table[entry] = int(number)
    return table


def entry_of(module: Path) -> str:
    """The table entry a file belongs to: its top-level package (``server/``) or file."""
    rel = module.relative_to(PACKAGE)
    return f"{rel.parts[0]}/" if len(rel.parts) > 1 else rel.name


def imported_entries(module: Path) -> set[str]:
    """The table entries ``module`` imports from (absolute gateway imports only)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(module.read_text())):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] != "gateway":
                continue
            if len(parts) == 1:
                found.add("__init__.py")
                continue
            head = PACKAGE / parts[1]
            if head.is_dir():
                found.add(f"{parts[1]}/")
            elif head.with_suffix(".py").is_file():
                found.add(f"{parts[1]}.py")
            else:  # "from gateway import __version__": the package itself
                found.add("__init__.py")
    return found


def test_every_module_is_in_exactly_one_layer() -> None:
    table = layer_table()
    entries = {entry_of(m) for m in PACKAGE.rglob("*.py")}
    assert entries - table.keys() == set(), "modules missing from docs/architecture.md's layer table"
    assert table.keys() - entries == set(), "docs/architecture.md names modules that do not exist"


def test_imports_point_down() -> None:
    table = layer_table()
    upward = []
    for module in sorted(PACKAGE.rglob("*.py")):
        mine = table[entry_of(module)]
        for entry in imported_entries(module):
            if table[entry] > mine:
                upward.append(f"{module.relative_to(ROOT)} (layer {mine}) imports {entry} (layer {table[entry]})")
    assert upward == []


def test_the_check_sees_an_upward_import(tmp_path: Path) -> None:
    """The checker is not blind: a base module importing the relay is reported."""
    bad = tmp_path / "bad.py"
    bad.write_text("from gateway.relay.call import Call\nimport gateway.server.app\nfrom gateway import codec\n")
    assert imported_entries(bad) == {"relay/", "server/", "codec.py", "__init__.py"}
    table = layer_table()
    assert table["relay/"] > table["config/"] and table["server/"] > table["relay/"]
