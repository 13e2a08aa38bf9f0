"""The import rules of ARCHITECTURE.md, read from the code."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OURS = {"engine_shim", "exporters", "collectors", "kpi_mapping", "dashboards", "alerts", "app",
        "llmkpi"}
ALLOWED = {
    "engine_shim": set(),
    "exporters": {"engine_shim.records"},
    "collectors": {"engine_shim.records"},
    "kpi_mapping": {"collectors"},
    "dashboards": {"exporters.catalog", "kpi_mapping.mappings"},
    "alerts": {"exporters.catalog", "kpi_mapping.mappings"},
    "app": {"kpi_mapping", "collectors"},
    "llmkpi": OURS,
}
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
    if root == package or root not in OURS:
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


def test_the_rule_checker_catches_a_violation() -> None:
    assert not allowed("exporters", "engine_shim.proxy")
    assert allowed("exporters", "engine_shim.records")
    assert not allowed("collectors", "kpi_mapping")
    assert allowed("llmkpi", "exporters.prometheus")
