"""The one reader of llmkpi's versioned YAML config files (SLO config, KPI config, tenant
aliases), and the one duration grammar.

A file is parsed once into a tree of values that remember their line; every mistake is a
`ValueError` reading `file:line: key: problem` (STYLE.md 3: validate at declaration, never
repair). Each config module keeps only its schema: which keys, which types, which ranges.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

UNIT_SECONDS = {"d": 86_400, "h": 3_600, "m": 60, "s": 1}
DURATION_RE = re.compile(r"^(?:\d+[dhms])+$")


def parse_duration(text: str) -> int:
    """Seconds of a duration like 30d, 12h, 90m, 1h12m or 1d2h3m4s (Prometheus' units)."""
    if not DURATION_RE.match(text):
        raise ValueError(f"{text!r} is not a duration like 30d, 12h, 90m")
    return sum(int(count) * UNIT_SECONDS[unit]
               for count, unit in re.findall(r"(\d+)([dhms])", text))


def format_duration(seconds: float) -> str:
    """Seconds as a duration `parse_duration` reads back: 1d, 1h12m, 30s."""
    left = round(seconds)
    if left <= 0:
        raise ValueError(f"a duration must be at least a second, got {seconds:g} s")
    out = ""
    for unit, size in UNIT_SECONDS.items():
        count, left = divmod(left, size)
        if count:
            out += f"{count}{unit}"
    return out


class Node:
    """A YAML value with the line it starts on (mappings and lists hold Nodes)."""

    def __init__(self, value: Any, line: int) -> None:
        self.value, self.line = value, line


def _tree(node: yaml.Node, loader: yaml.SafeLoader) -> Node:
    line = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        return Node({loader.construct_object(k): _tree(v, loader) for k, v in node.value},
                    line)
    if isinstance(node, yaml.SequenceNode):
        return Node([_tree(item, loader) for item in node.value], line)
    return Node(loader.construct_object(node), line)


class ConfigFile:
    """A versioned config file read into line-numbered nodes, with typed accessors.

    `what` names the file in messages ("the SLO config"); `needs` says what an empty file
    lacks. The top level must be a mapping with `version: VERSION`.
    """

    def __init__(self, path: Path, what: str, version: int | None = 1,
                 needs: str = "`version: 1`") -> None:
        self.path = path
        try:
            text = path.read_text(encoding="utf-8-sig")
        except OSError as exc:
            raise ValueError(f"{path}: cannot read {what}: {exc.strerror}") from None
        loader = yaml.SafeLoader(text)
        try:
            root = loader.get_single_node()
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"{mark.line + 1}:" if mark is not None else ""
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise ValueError(f"{path}:{where} not valid YAML: {problem}") from None
        finally:
            loader.dispose()
        if root is None:
            raise ValueError(f"{path}: {what} is empty; it needs {needs}")
        self.root = _tree(root, yaml.SafeLoader(""))
        top = self.mapping(self.root, "(top level)")
        self.versioned = version is not None
        if version is None:  # a format llmkpi shares with other tools (it has no version)
            self.top = {str(k): v for k, v in top.items()}
            return
        if "version" not in top:
            raise self.fail(self.root, "version", f"missing: this llmkpi reads version {version}")
        if top["version"].value != version:
            raise self.fail(top["version"], "version", f"{top['version'].value!r} is not a"
                            f" version this llmkpi reads ({version})")
        self.top = {str(k): v for k, v in top.items() if k != "version"}

    def fail(self, node: Node, key: str, problem: str) -> ValueError:
        return ValueError(f"{self.path}:{node.line}: {key}: {problem}")

    def refuse_unknown(self, allowed: tuple[str, ...]) -> None:
        """Top-level keys other than version and `allowed` are mistakes."""
        for name, node in self.top.items():
            if name not in allowed:
                expected = ("version", *allowed) if self.versioned else allowed
                raise self.fail(node, name, f"unknown key: expected {', '.join(expected)}")

    def mapping(self, node: Node, key: str) -> dict[Any, Node]:
        """The mapping at node, keys as YAML typed them (a mapping id may be 13)."""
        if not isinstance(node.value, dict):
            raise self.fail(node, key, "expected a mapping of keys to values")
        return dict(node.value)

    def fields(self, node: Node, key: str, allowed: tuple[str, ...]) -> dict[str, Node]:
        """The mapping at node with text keys, refusing keys not in `allowed`."""
        found = {str(name): value for name, value in self.mapping(node, key).items()}
        for name, value in found.items():
            if name not in allowed:
                raise self.fail(value, f"{key}.{name}".lstrip("."),
                                f"unknown key: expected {', '.join(allowed)}")
        return found

    def items(self, node: Node, key: str) -> list[Node]:
        if not isinstance(node.value, list):
            raise self.fail(node, key, "expected a list")
        return list(node.value)

    def number(self, node: Node, key: str, low: float | None = None,
               high: float | None = None, open_low: bool = False) -> float:
        """A number in [low, high) (or (low, high) with open_low)."""
        value = node.value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(node, key, f"expected a number, got {value!r}")
        if (low is not None and (value < low or (open_low and value == low))) or (
                high is not None and value >= high):
            bounds = [f"{'above' if open_low else 'at least'} {low:g}"] if low is not None \
                else []
            if high is not None:
                bounds.append(f"below {high:g}")
            raise self.fail(node, key, f"{value!r} is out of range: give a number"
                            f" {' and '.join(bounds)}")
        return float(value)

    def whole(self, node: Node, key: str, low: int, high: int) -> int:
        value = node.value
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise self.fail(node, key, f"expected a whole number from {low} to {high}, got"
                            f" {value!r}")
        return value

    def text(self, node: Node, key: str, pattern: re.Pattern[str] | None = None,
             rule: str = "") -> str:
        """Non-empty text; with a pattern, a name matching it (`rule` says it in words)."""
        if not isinstance(node.value, str) or not node.value:
            raise self.fail(node, key, f"expected text, got {node.value!r}")
        if pattern is not None and not pattern.match(node.value):
            raise self.fail(node, key, f"{node.value!r} is not a valid name"
                            f" ({rule or pattern.pattern})")
        return node.value

    def choice(self, node: Node, key: str, choices: tuple[str, ...]) -> str:
        if node.value not in choices:
            raise self.fail(node, key, f"expected {' or '.join(choices)}, got {node.value!r}")
        return str(node.value)

    def flag(self, node: Node, key: str) -> bool:
        if not isinstance(node.value, bool):
            raise self.fail(node, key, f"expected true or false, got {node.value!r}")
        return node.value

    def texts(self, node: Node, key: str) -> tuple[str, ...]:
        items = node.value
        if not isinstance(items, list) or not all(isinstance(i.value, str) for i in items):
            raise self.fail(node, key, "expected a list of names")
        return tuple(i.value for i in items)

    def duration(self, node: Node, key: str) -> float:
        try:
            return float(parse_duration(str(node.value)))
        except ValueError as exc:
            raise self.fail(node, key, str(exc)) from None
