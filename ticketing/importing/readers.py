"""Reading event logs as rows of named values: CSV (plain or gzip) and XES.

XES (IEEE 1849, the process-mining XML format) is read with `xml.etree.ElementTree.iterparse`,
one trace at a time. Each event becomes a row of its attributes, with the trace's attributes
under `case:<key>` (the pm4py convention), so a mapping names `case:concept:name`,
`concept:name`, `time:timestamp` and `org:resource` as columns. Python's expat refuses entity
expansion bombs, and XES needs no DTD."""

from __future__ import annotations

import csv
import gzip
import io
import xml.etree.ElementTree as ET
from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from ticketing.importing.mapping import SourceSpec

GZIP_MAGIC = b"\x1f\x8b"
XES_ATTRIBUTES = frozenset({"string", "date", "int", "float", "boolean", "id"})


class SourceError(ValueError):
    """The file cannot be read as the mapping says (not CSV, broken XML, bad encoding)."""


@dataclass(frozen=True)
class SourceRow:
    """One row: its line in the file (CSV) or event number (XES), and its values; nulls are
    None and every value is stripped of surrounding blanks."""

    line: int
    values: dict[str, str | None]


@dataclass
class SourceFile:
    """An open event log: its columns (None for XES, whose events vary) and its rows.
    Close it (or use it in a `with` block) whether or not the rows were read."""

    path: Path
    format: str
    columns: list[str] | None
    rows: Generator[SourceRow, None, None]
    closer: Callable[[], None] | None = None

    def close(self) -> None:
        self.rows.close()
        if self.closer is not None:
            self.closer()

    def __enter__(self) -> SourceFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def is_gzip(path: Path) -> bool:
    with path.open("rb") as raw:
        return raw.read(2) == GZIP_MAGIC


def detect_format(path: Path, spec: SourceSpec) -> str:
    if spec.format != "auto":
        return spec.format
    name = path.name.lower().removesuffix(".gz")
    return "xes" if name.endswith(".xes") else "csv"


def _open_binary(path: Path) -> IO[bytes]:
    if is_gzip(path):
        return gzip.open(path, "rb")  # type: ignore[return-value]  # GzipFile is an IO[bytes]
    return path.open("rb")


def open_source(path: Path, spec: SourceSpec) -> SourceFile:
    """Open `path` (gzip is recognised by its magic bytes, whatever the name)."""
    path = Path(path)
    if not path.is_file():
        raise SourceError(f"{path}: no such file")
    kind = detect_format(path, spec)
    nulls = frozenset(spec.null_values)
    if kind == "xes":
        return SourceFile(path, kind, None, _xes_rows(path, nulls))
    return _csv_source(path, spec, nulls)


def _csv_source(path: Path, spec: SourceSpec, nulls: frozenset[str]) -> SourceFile:
    binary = _open_binary(path)
    text = io.TextIOWrapper(binary, encoding=spec.encoding, newline="")
    reader = csv.reader(text, delimiter=spec.delimiter)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        text.close()
        raise SourceError(f"{path}: empty file, no header row") from None
    except (UnicodeDecodeError, OSError, csv.Error) as error:
        text.close()
        raise SourceError(f"{path}: cannot read the header: {error}") from error
    if len(set(header)) != len(header):
        text.close()
        raise SourceError(f"{path}: repeated column names in the header: {header}")

    def rows() -> Generator[SourceRow, None, None]:
        try:
            for record in reader:
                if not record or record == [""]:
                    continue
                if len(record) != len(header):
                    raise SourceError(
                        f"{path}:{reader.line_num}: {len(record)} fields, "
                        f"the header has {len(header)}"
                    )
                values = {
                    name: None if value.strip() in nulls else value.strip()
                    for name, value in zip(header, record, strict=True)
                }
                yield SourceRow(reader.line_num, values)
        except (UnicodeDecodeError, OSError, csv.Error) as error:
            raise SourceError(f"{path}:{reader.line_num}: {error}") from error
        finally:
            text.close()

    return SourceFile(path, "csv", header, rows(), text.close)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _xes_rows(path: Path, nulls: frozenset[str]) -> Generator[SourceRow, None, None]:
    """Events in document order; a trace's events are yielded when the trace ends, since its
    attributes may follow its events."""
    number = 0
    stack: list[str] = []
    trace: dict[str, str | None] = {}
    events: list[dict[str, str | None]] = []
    event: dict[str, str | None] | None = None
    with _open_binary(path) as source:
        try:
            for kind, element in ET.iterparse(source, events=("start", "end")):
                tag = _local(element.tag)
                if kind == "start":
                    stack.append(tag)
                    if tag == "trace":
                        trace, events = {}, []
                    elif tag == "event" and len(stack) >= 2 and stack[-2] == "trace":
                        event = {}
                    continue
                stack.pop()
                parent = stack[-1] if stack else ""
                if tag in XES_ATTRIBUTES and "key" in element.attrib:
                    raw = element.attrib.get("value")
                    value = None if raw is None or raw.strip() in nulls else raw.strip()
                    if parent == "event" and event is not None:
                        event[element.attrib["key"]] = value
                    elif parent == "trace":
                        trace[f"case:{element.attrib['key']}"] = value
                elif tag == "event" and event is not None:
                    events.append(event)
                    event = None
                elif tag == "trace":
                    for values in events:
                        number += 1
                        yield SourceRow(number, {**trace, **values})
                    element.clear()
        except ET.ParseError as error:
            raise SourceError(f"{path}: not well-formed XES: {error}") from error
