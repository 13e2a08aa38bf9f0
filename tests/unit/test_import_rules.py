"""The import rules of docs/architecture.md (its package table), read from the code."""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARCHITECTURE = ROOT / "docs" / "architecture.md"


def rules_from_the_page(text: str) -> dict[str, set[str]]:
    """The "may import" column of docs/architecture.md's package table."""
    found: dict[str, set[str]] = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not re.fullmatch(r"`[a-z_]+`", cells[0]):
            continue
        package, may = cells[0].strip("`"), cells[2]
        found[package] = {"*"} if may == "everything" else set(re.findall(r"`([a-z_.]+)`",
                                                                           may))
    return found


ALLOWED = rules_from_the_page(ARCHITECTURE.read_text(encoding="utf-8"))
OURS = set(ALLOWED)
THIRD_PARTY_OWNERS = {
    "vllm": {"engine_shim"},
    "prometheus_client": {"exporters"},
    "opentelemetry": {"exporters"},
    "mixpanel": {"exporters"},
}


def imports_of(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            found += [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
    return found


def allowed(package: str, module: str) -> bool:
    root = module.split(".", maxsplit=1)[0]
    if root == package or root not in OURS or "*" in ALLOWED[package]:
        return True
    return any(module == rule or module.startswith(rule + ".") or rule.startswith(module + ".")
               for rule in ALLOWED[package])


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_imports_point_up_the_house(package: str) -> None:
    bad = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for line, module in imports_of(path):
            root = module.split(".")[0]
            if root in OURS and not allowed(package, module):
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
            owners = THIRD_PARTY_OWNERS.get(root)
            if owners is not None and package not in owners:
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {module} (only "
                           f"{', '.join(sorted(owners))} may)")
    assert not bad, "\n".join(bad)


def test_the_page_names_every_package_and_specs_imports_none_of_ours() -> None:
    folders = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"tests", "bench"}
    assert set(ALLOWED) == folders
    assert ALLOWED["specs"] == set()
    assert all("specs" in rules or "*" in rules for name, rules in ALLOWED.items()
               if name != "specs")


def test_the_rule_checker_catches_a_violation() -> None:
    assert not allowed("exporters", "engine_shim.proxy")
    assert allowed("exporters", "engine_shim.records")
    assert not allowed("collectors", "kpi_mapping")
    assert allowed("llmkpi", "exporters.prometheus")
    assert not allowed("specs", "engine_shim.records")
    assert allowed("alerts", "specs.catalog")
