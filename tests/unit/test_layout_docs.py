"""The README's "Layout" table says what the import-linter contracts enforce: the same layers,
in the same order, and the same kernel."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def contracts() -> list[dict[str, object]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    found: list[dict[str, object]] = config["tool"]["importlinter"]["contracts"]
    return found


def layout_rows() -> list[tuple[str, list[str]]]:
    """(layer name, modules named in its package cell) for each row of the Layout table."""
    text = (ROOT / "README.md").read_text()
    table = text[text.index("## Layout") :].split("\n\n")[2]
    rows = []
    for line in table.splitlines()[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        paths = re.findall(r"`([^`]+)`", cells[1])
        modules = []
        for path in paths:
            full = path if "/" in path else f"ticketing/{path}"  # `home.py` beside settings
            modules.append(full.removesuffix("/").removesuffix(".py").replace("/", "."))
        rows.append((cells[0], modules))
    return rows


def test_the_layout_table_lists_the_layers_in_the_contract_s_order() -> None:
    layers = next(c for c in contracts() if c["type"] == "layers")["layers"]
    assert isinstance(layers, list)
    rank = {
        module.strip(): index for index, layer in enumerate(layers) for module in layer.split("|")
    }
    listed = [m for _, modules in layout_rows() for m in modules if m in rank]
    assert sorted(listed) == sorted(rank), "every layer of the contract has a row, and only once"
    assert [rank[m] for m in listed] == sorted(rank[m] for m in listed), listed


def test_the_kernel_row_is_the_kernel_contract_s_sources() -> None:
    kernel = next(c for c in contracts() if "kernel" in str(c["name"]))
    rows = dict(layout_rows())
    assert sorted(rows["kernel"]) == sorted(kernel["source_modules"])  # type: ignore[arg-type]
