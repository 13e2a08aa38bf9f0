"""Importers for CI output: JUnit XML test results and Cobertura XML coverage.

A small expat reader keeps each element's line so errors can name it; ElementTree cannot.
"""

from __future__ import annotations

import xml.parsers.expat
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from xml.etree import ElementTree

from sqlmodel import SQLModel

from collectors.importers.base import BadInputError, Unique, document_bytes
from collectors.tables import CoverageReport, TestRun


@dataclass(frozen=True)
class Element:
    tag: str
    attrs: dict[str, str]
    line: int
    depth: int


def read_xml(path: Path) -> list[Element]:
    elements: list[Element] = []
    depth = 0
    parser = xml.parsers.expat.ParserCreate()

    def start(tag: str, attrs: dict[str, str]) -> None:
        nonlocal depth
        elements.append(Element(tag, attrs, parser.CurrentLineNumber, depth))
        depth += 1

    def end(_tag: str) -> None:
        nonlocal depth
        depth -= 1

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    try:
        parser.Parse(document_bytes(path), True)
    except xml.parsers.expat.ExpatError as exc:
        raise BadInputError(path, exc.lineno, "(xml)", xml.parsers.expat.errors.messages[
            exc.code] if exc.code else str(exc)) from None
    except LookupError as exc:  # the declaration names an encoding Python does not know
        raise BadInputError(path, 1, "(xml)", f"{exc}") from None
    return elements


class Attrs:
    def __init__(self, path: Path, element: Element) -> None:
        self.path, self.element = path, element

    def fail(self, name: str, problem: str) -> BadInputError:
        return BadInputError(self.path, self.element.line, f"{self.element.tag}@{name}", problem)

    def get(self, name: str) -> str:
        value = self.element.attrs.get(name)
        if value is None or not value.strip():
            raise self.fail(name, "is missing")
        return value.strip()

    def count(self, name: str, default: int | None = None) -> int:
        if name not in self.element.attrs and default is not None:
            return default
        value = self.get(name)
        try:
            number = int(value)
        except ValueError:
            raise self.fail(name, f"{value!r} is not a whole number") from None
        if number < 0:
            raise self.fail(name, f"{number} is negative")
        return number

    def seconds(self, name: str) -> float:
        value = self.element.attrs.get(name, "0").strip() or "0"
        try:
            return float(value)
        except ValueError:
            raise self.fail(name, f"{value!r} is not a number") from None

    def moment(self, name: str) -> datetime:
        value = self.get(name)
        if value.isdigit():  # coverage.py writes milliseconds since the epoch
            return datetime.fromtimestamp(int(value) / 1000, tz=UTC)
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise self.fail(name, f"{value!r} is not a time") from None
        return parsed.replace(tzinfo=parsed.tzinfo or UTC).astimezone(UTC)


class JUnitImporter:
    """<testsuites>/<testsuite name tests failures errors skipped time timestamp> (pytest,
    Maven Surefire, Jest's junit reporter...). Key: suite name + timestamp."""

    kind = "junit"

    def load(self, path: Path) -> list[SQLModel]:
        elements = read_xml(path)
        if not elements or elements[0].tag not in ("testsuites", "testsuite"):
            raise BadInputError(path, 1, "(root)", "expected <testsuites> or <testsuite>")
        rows: list[SQLModel] = []
        unique = Unique("testsuite@name")
        for element in elements:
            if element.tag != "testsuite":
                continue
            attrs = Attrs(path, element)
            name, taken = attrs.get("name"), attrs.moment("timestamp")
            unique.check_at(path, element.line, f"{name} at {taken.isoformat()}")
            tests = attrs.count("tests")
            failed = attrs.count("failures", 0) + attrs.count("errors", 0)
            if failed > tests:
                raise attrs.fail("failures", f"{failed} failures and errors exceed {tests} tests")
            rows.append(TestRun(suite=name, taken=taken, tests=tests,
                                failures=attrs.count("failures", 0),
                                errors=attrs.count("errors", 0),
                                skipped=attrs.count("skipped", 0), seconds=attrs.seconds("time")))
        unique.finish()
        if not rows:
            raise BadInputError(path, 1, "testsuite", "the file has no <testsuite>")
        return rows


class CoverageImporter:
    """Cobertura XML as coverage.py, JaCoCo-to-Cobertura and most CI tools write it.

    A report is a snapshot of one codebase, so its key is the component it measured and its
    timestamp: the `--component` given, else the last folder name of the report's first
    <sources><source> (the code root coverage.py records; the folder above it differs from
    one CI machine to the next), else "default". Two reports of one component are two
    snapshots, never summed (KPI 8 reads the latest per component)."""

    kind = "coverage"

    def __init__(self, component: str | None = None) -> None:
        self.component = component

    def _component(self, path: Path) -> str:
        if self.component:
            return self.component[:256]
        for _event, node in ElementTree.iterparse(path, events=("end",)):
            text = (node.text or "").strip().rstrip("/\\")
            if node.tag == "source" and text:
                return text.replace("\\", "/").rsplit("/", 1)[-1][:256] or "default"
        return "default"

    def load(self, path: Path) -> list[SQLModel]:
        elements = read_xml(path)
        if not elements or elements[0].tag != "coverage":
            raise BadInputError(path, 1, "(root)", "expected a Cobertura <coverage> root")
        attrs = Attrs(path, elements[0])
        valid, covered = attrs.count("lines-valid"), attrs.count("lines-covered")
        if covered > valid:
            raise attrs.fail("lines-covered", f"{covered} exceeds lines-valid {valid}")
        branches_valid = attrs.count("branches-valid", 0)
        branches_covered = attrs.count("branches-covered", 0)
        if branches_covered > branches_valid:
            raise attrs.fail("branches-covered", f"{branches_covered} exceeds branches-valid")
        return [CoverageReport(source=self._component(path), taken=attrs.moment("timestamp"),
                               lines_valid=valid, lines_covered=covered,
                               branches_valid=branches_valid, branches_covered=branches_covered)]
