"""Reading event logs as rows of named values: CSV and XES, plain, gzip or in a zip archive.

XES (IEEE 1849, the process-mining XML format) is read with `xml.etree.ElementTree.iterparse`,
one trace at a time. Each event becomes a row of its attributes, with the trace's attributes
under `case:<key>` (the pm4py convention), so a mapping names `case:concept:name`,
`concept:name`, `time:timestamp` and `org:resource` as columns. Python's expat refuses entity
expansion bombs, and XES needs no DTD.

Compression is recognised by the first bytes, whatever the name: gzip, or a zip archive
holding one file (`FILE.zip:MEMBER` names one of several). The mapping's `[source] rename`
renames columns as they are read, so the rest of the mapping uses the new names."""

from __future__ import annotations

import csv
import gzip
import io
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, cast

from ticketing.importing.mapping import MappingError, SourceSpec

GZIP_MAGIC = b"\x1f\x8b"
ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")  # an archive's first entry, or an empty one
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


def is_zip(path: Path) -> bool:
    with path.open("rb") as raw:
        return raw.read(4) in ZIP_MAGICS


@dataclass(frozen=True)
class Input:
    """Where the log's bytes are: a file, or one member of a zip archive (`member`)."""

    path: Path
    member: str | None = None

    @property
    def name(self) -> str:
        """The name the format is told by: the member's when there is one."""
        return self.member or self.path.name

    def __str__(self) -> str:
        return f"{self.path}:{self.member}" if self.member else str(self.path)

    def open_binary(self) -> IO[bytes]:
        """The uncompressed bytes (a gzip file or member is recognised by its magic)."""
        if self.member is not None:
            with zipfile.ZipFile(self.path) as archive:
                # The member keeps the file open after the archive object closes.
                inner = cast(zipfile.ZipExtFile, archive.open(self.member))
            if inner.peek(2)[:2] == GZIP_MAGIC:
                return cast(IO[bytes], _GzipMember(inner))
            return cast(IO[bytes], inner)
        if is_gzip(self.path):
            return gzip.open(self.path, "rb")  # type: ignore[return-value]  # an IO[bytes]
        return self.path.open("rb")


class _GzipMember(gzip.GzipFile):
    """A gzip file inside a zip archive: closing it closes the member too."""

    def __init__(self, member: zipfile.ZipExtFile) -> None:
        super().__init__(fileobj=member, mode="rb")
        self._member = member

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._member.close()


def locate(path: Path | str) -> Input:
    """The input `path` names: a file, a zip archive holding exactly one file, or
    `ARCHIVE.zip:MEMBER`. Anything else is a `SourceError` saying what is there."""
    path = Path(path)
    member: str | None = None
    if not path.is_file():
        head, sep, wanted = str(path).rpartition(":")
        if not sep or not wanted or not Path(head).is_file() or not is_zip(Path(head)):
            raise SourceError(f"{path}: no such file")
        path, member = Path(head), wanted
    if member is None and not is_zip(path):
        return Input(path)
    try:
        with zipfile.ZipFile(path) as archive:
            files = [
                info.filename
                for info in archive.infolist()
                if not info.is_dir() and not info.filename.startswith("__MACOSX/")
            ]
    except (zipfile.BadZipFile, OSError) as error:
        raise SourceError(f"{path}: not a readable zip archive: {error}") from error
    if member is not None:
        if member not in files:
            raise SourceError(
                f"{path}: the zip archive has no file {member!r} "
                f"(it has: {', '.join(files) or 'nothing'})"
            )
        return Input(path, member)
    if not files:
        raise SourceError(f"{path}: the zip archive is empty (no file to import)")
    if len(files) > 1:
        shown = ", ".join(files[:10]) + (", ..." if len(files) > 10 else "")
        raise SourceError(
            f"{path}: the zip archive holds {len(files)} files ({shown}); name one as {path}:MEMBER"
        )
    return Input(path, files[0])


def detect_format(name: str | Path, spec: SourceSpec) -> str:
    if spec.format != "auto":
        return spec.format
    name = Path(name).name.lower().removesuffix(".gz")
    return "xes" if name.endswith(".xes") else "csv"


def open_source(path: Path | str | Input, spec: SourceSpec) -> SourceFile:
    """Open `path`: a file or a zip member (see `locate`); gzip is recognised by its magic
    bytes, whatever the name."""
    where = path if isinstance(path, Input) else locate(path)
    kind = detect_format(where.name, spec)
    nulls = frozenset(spec.null_values)
    if kind == "xes":
        return SourceFile(where.path, kind, None, _xes_rows(where, nulls, spec.rename))
    return _csv_source(where, spec, nulls)


def renamed_header(header: list[str], rename: dict[str, str], where: object) -> list[str]:
    """The header with the mapping's renames applied; a repeated name, a rename of a column
    the file lacks and a rename onto a name the file already has are errors naming them."""
    seen: dict[str, int] = {}
    for number, name in enumerate(header, start=1):
        if name in seen:
            raise SourceError(
                f"{where}: the header repeats the column name {name!r} "
                f"(columns {seen[name]} and {number})"
            )
        seen[name] = number
    for old, new in rename.items():
        if old not in seen:
            raise MappingError(
                f"source.rename.{old}: the file has no column {old!r} "
                f"(it has: {', '.join(sorted(seen))})"
            )
        if new in seen and new not in rename:
            raise MappingError(
                f"source.rename.{old}: cannot rename {old!r} to {new!r}, "
                f"the file already has a column {new!r}"
            )
    return [rename.get(name, name) for name in header]


def _csv_source(where: Input, spec: SourceSpec, nulls: frozenset[str]) -> SourceFile:
    binary = where.open_binary()
    text = io.TextIOWrapper(binary, encoding=spec.encoding, newline="")
    reader = csv.reader(text, delimiter=spec.delimiter)
    path = where
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        text.close()
        raise SourceError(f"{path}: empty file, no header row") from None
    except (UnicodeDecodeError, OSError, csv.Error, EOFError, zipfile.BadZipFile) as error:
        text.close()
        raise SourceError(f"{path}: cannot read the header: {error}") from error
    try:
        header = renamed_header(header, spec.rename, path)
    except (SourceError, MappingError):
        text.close()
        raise

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
        except (UnicodeDecodeError, OSError, csv.Error, EOFError, zipfile.BadZipFile) as error:
            raise SourceError(f"{path}:{reader.line_num}: {error}") from error
        finally:
            text.close()

    return SourceFile(where.path, "csv", header, rows(), text.close)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _xes_rows(
    path: Input, nulls: frozenset[str], rename: dict[str, str]
) -> Generator[SourceRow, None, None]:
    """Events in document order; a trace's events are yielded when the trace ends, since its
    attributes may follow its events. Renames apply to each event's keys (`case:` ones
    included); a rename onto a key the event already has is an error."""
    number = 0
    stack: list[str] = []
    trace: dict[str, str | None] = {}
    events: list[dict[str, str | None]] = []
    event: dict[str, str | None] | None = None
    with path.open_binary() as source:
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
                        row = {**trace, **values}
                        yield SourceRow(
                            number, _renamed(row, rename, path, number) if rename else row
                        )
                    element.clear()
        except ET.ParseError as error:
            raise SourceError(f"{path}: not well-formed XES: {error}") from error
        except (OSError, EOFError, zipfile.BadZipFile) as error:
            raise SourceError(f"{path}: {error}") from error


def _renamed(
    values: dict[str, str | None], rename: dict[str, str], where: Input, number: int
) -> dict[str, str | None]:
    renamed: dict[str, str | None] = {}
    for name, value in values.items():
        new = rename.get(name, name)
        if new in values and new != name and new not in rename:
            raise MappingError(
                f"source.rename.{name}: cannot rename {name!r} to {new!r}, "
                f"event {number} of {where} already has {new!r}"
            )
        renamed[new] = value
    return renamed
