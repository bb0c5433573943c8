"""The mapping file: which columns, formats and values of a foreign event log mean what here.

A TOML file read with the standard library's `tomllib` and validated by the pydantic models
below, so a typo or an unknown value is an error naming its field before anything is imported.
The README's "Importing history" section documents every key with an example."""

from __future__ import annotations

import codecs
import hashlib
import re
import unicodedata
from collections.abc import Iterable, Mapping
from datetime import UTC, tzinfo
from pathlib import Path
from typing import Annotated, Generic, Literal, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from ticketing.domain.values import (
    IDENTIFIER_PATTERN,
    ActorKind,
    Channel,
    Priority,
    SlaTier,
    Status,
)
from ticketing.toml_files import describe_validation, read_toml

SourceName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,39}$")]
Identifier = Annotated[str, StringConstraints(pattern=IDENTIFIER_PATTERN.pattern)]
ColumnName = Annotated[str, StringConstraints(min_length=1)]
CategoryName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_\-]{0,39}$")]
TagPrefix = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_\-:.]{0,24}$")]

T = TypeVar("T")

BUILTIN_NAMES = frozenset({"case", "source", "activity", "label"})
"""Template names that are not columns: the case id, the source name, and for activity notes
the raw activity value and its label."""

_PLACEHOLDER = re.compile(r"\{([^{}|]+?)(\|slug)?\}")


class MappingError(ValueError):
    """The mapping file is unreadable or invalid; the message names the file and the field."""


class Unmappable(Exception):  # noqa: N818 - a row outcome with a reason code, not a failure
    """A row that cannot become commands; `code` is the reason it is counted under."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def time_zone(name: str) -> tzinfo:
    if name.upper() == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r} (an IANA name such as Europe/Rome)") from None


class SourceSpec(_Strict):
    """What the file is: its name here, its shape, and how to read it."""

    name: SourceName
    kind: Literal["activity", "snapshot"]
    format: Literal["auto", "csv", "xes"] = "auto"
    delimiter: Annotated[str, StringConstraints(min_length=1, max_length=1)] = ","
    encoding: str = "utf-8-sig"
    null_values: list[str] = [""]
    time_zone: str = "UTC"
    order: Literal["time", "file"] = "time"
    rename: dict[ColumnName, ColumnName] = {}

    @field_validator("rename")
    @classmethod
    def _distinct_names(cls, value: dict[str, str]) -> dict[str, str]:
        first: dict[str, str] = {}
        for old, new in value.items():
            if new in first:
                raise ValueError(f"{first[new]!r} and {old!r} are both renamed to {new!r}")
            first[new] = old
        return value

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        time_zone(value)
        return value

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        try:
            codecs.lookup(value)
        except LookupError:
            raise ValueError(f"unknown encoding {value!r}") from None
        return value

    @property
    def zone(self) -> tzinfo:
        return time_zone(self.time_zone)


class CaseSpec(_Strict):
    column: ColumnName


class TimeSpec(_Strict):
    """A time column and its formats (`strptime` patterns, tried in order, or "iso")."""

    column: ColumnName
    formats: Annotated[list[str], Field(min_length=1)] = ["iso"]

    @field_validator("formats")
    @classmethod
    def _formats(cls, value: list[str]) -> list[str]:
        for pattern in value:
            if pattern != "iso" and "%" not in pattern:
                raise ValueError(f"{pattern!r} is neither 'iso' nor a strptime pattern")
        return value


class ActorSpec(_Strict):
    """Who did each row's change (a resource column); its values are slugified into ids."""

    column: ColumnName
    kind: ActorKind = ActorKind.AGENT


class AccountSpec(_Strict):
    """A single account (`id`) or one per value of a column (slugified; `id` for nulls)."""

    id: Identifier | None = None
    column: ColumnName | None = None
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
    tier: SlaTier = SlaTier.STANDARD

    @model_validator(mode="after")
    def _one_source(self) -> AccountSpec:
        if self.id is None and self.column is None:
            raise ValueError("account: give `id` (one account) or `column` (one per value)")
        return self


class TicketSpec(_Strict):
    """Templates for what a ticket is opened with: `{column}`, `{column|slug}`, `{case}`."""

    requester: str = "case-{case|slug}@{source}.invalid"
    subject: str = "{source} case {case}"
    description: str = ""

    @field_validator("requester", "subject", "description")
    @classmethod
    def _template(cls, value: str) -> str:
        check_template(value)
        return value


class ValueSpec(_Strict, Generic[T]):
    """A column whose values map onto ours: `map` first, then `slug` (the value slugified),
    then `default`; `default` also stands for nulls. Anything else makes the row unmappable."""

    column: ColumnName
    map: dict[str, T] = {}
    default: T | None = None
    slug: bool = False


class CategorySpec(ValueSpec[CategoryName]):
    """Categories, optionally keeping the original value as a tag `<tag_prefix><slug>`."""

    tag_prefix: TagPrefix | None = None


class ActivityRule(_Strict):
    """What one activity value does: open the ticket, move its status, add a note or a reply,
    or nothing. `open` on a later row of the case does `repeat` instead."""

    label: Annotated[str, StringConstraints(max_length=200)] = ""
    action: Literal["open", "status", "note", "reply", "customer_reply", "ignore"]
    status: Status | None = None
    repeat: Literal["note", "ignore"] = "note"
    body: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ActivityRule:
        if self.action == "status" and self.status is None:
            raise ValueError("action 'status' needs `status`")
        if self.action != "status" and self.status is not None:
            raise ValueError(f"`status` only goes with action 'status', not {self.action!r}")
        if self.body is not None:
            check_template(self.body)
        return self


class ActivitySpec(_Strict):
    """Activity logs: the activity column and a rule per value; `unknown` says what an
    unlisted value does (`error`: the row is unmappable; `note`; `ignore`).

    `columns` instead of `column` makes the activity several columns' values joined with
    `separator` (XES `concept:name` + `lifecycle:transition` -> `"register+complete"`, the
    pm4py classifier's form); the map's keys are then the joined values. A null part is left
    out with its separator."""

    column: ColumnName | None = None
    columns: Annotated[list[ColumnName], Field(min_length=2)] | None = None
    separator: str = "+"
    map: Annotated[dict[str, ActivityRule], Field(min_length=1)]
    unknown: Literal["error", "note", "ignore"] = "error"

    @model_validator(mode="after")
    def _one_key(self) -> ActivitySpec:
        if (self.column is None) == (self.columns is None):
            raise ValueError("give `column` (one column) or `columns` (joined), not both")
        return self

    @property
    def key_columns(self) -> list[str]:
        """The columns the activity is read from, in joining order."""
        return [self.column] if self.column is not None else list(self.columns or [])

    @property
    def key_name(self) -> str:
        """How messages name the activity's column(s)."""
        return self.separator.join(self.key_columns)

    def key(self, values: Mapping[str, str | None]) -> str | None:
        """The row's activity: its column's value, or the non-null parts joined (None if
        every part is null)."""
        parts = [v for v in (values.get(c) for c in self.key_columns) if v is not None]
        return self.separator.join(parts) if parts else None


class ImportMapping(_Strict):
    """A whole mapping file. Snapshot logs need `[status]`; activity logs need `[activity]`."""

    source: SourceSpec
    case: CaseSpec
    time: TimeSpec
    opened: TimeSpec | None = None
    actor: ActorSpec | None = None
    account: AccountSpec
    ticket: TicketSpec = TicketSpec()
    status: ValueSpec[Status] | None = None
    activity: ActivitySpec | None = None
    priority: ValueSpec[Priority] | None = None
    channel: ValueSpec[Channel] | None = None
    category: CategorySpec | None = None
    team: ValueSpec[Identifier] | None = None
    agent: ValueSpec[Identifier] | None = None

    @model_validator(mode="after")
    def _shape(self) -> ImportMapping:
        if self.source.kind == "snapshot":
            if self.status is None:
                raise ValueError("status: a snapshot log needs a [status] table (its state column)")
            if self.activity is not None:
                raise ValueError("activity: only activity logs have an [activity] table")
        else:
            if self.activity is None:
                raise ValueError("activity: an activity log needs an [activity] table")
            if self.status is not None:
                raise ValueError("status: an activity log moves status through [activity] rules")
        return self

    @property
    def actor_id(self) -> str:
        """The system actor of rows without a mapped resource."""
        return f"import-{self.source.name}"

    def digest(self) -> str:
        """Identifies the mapping's meaning (not its comments), for the progress file."""
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()

    def columns(self) -> dict[str, str]:
        """Every column the mapping reads, by the field that names it."""
        found: dict[str, str] = {"case.column": self.case.column, "time.column": self.time.column}
        if self.activity is not None:
            for n, column in enumerate(self.activity.key_columns):
                found["activity.column" if self.activity.column else f"activity.columns.{n}"] = (
                    column
                )
        for name in ("opened", "actor", "status", "priority", "channel"):
            spec = getattr(self, name)
            if spec is not None:
                found[f"{name}.column"] = spec.column
        for name in ("category", "team", "agent"):
            spec = getattr(self, name)
            if spec is not None:
                found[f"{name}.column"] = spec.column
        if self.account.column is not None:
            found["account.column"] = self.account.column
        for field in ("requester", "subject", "description"):
            for column in template_names(getattr(self.ticket, field)):
                found.setdefault(f"ticket.{field}", column)
        if self.activity is not None:
            for value, rule in self.activity.map.items():
                for column in template_names(rule.body or ""):
                    found.setdefault(f"activity.map.{value}.body", column)
        return found

    def check_columns(self, available: Iterable[str]) -> None:
        """Fail naming the field when the mapping reads a column the file does not have."""
        have = set(available)
        for field, column in self.columns().items():
            if column not in have:
                raise MappingError(
                    f"{field}: the file has no column {column!r} "
                    f"(it has: {', '.join(sorted(have))})"
                )

    def check_categories(self, categories: Iterable[str]) -> None:
        """Fail naming the field when a mapped category is not in the configured taxonomy."""
        if self.category is None:
            return
        known = set(categories)
        mapped = {f"category.map.{k}": v for k, v in self.category.map.items()}
        if self.category.default is not None:
            mapped["category.default"] = self.category.default
        for field, value in mapped.items():
            if value not in known:
                raise MappingError(
                    f"{field}: {value!r} is not in the category taxonomy "
                    f"({', '.join(sorted(known))}; see TICKETING_CATEGORIES)"
                )


def load_mapping(path: Path | str) -> ImportMapping:
    """Read and validate a mapping file; any problem is one `MappingError` naming the field."""
    path = Path(path)
    data = read_toml(path, MappingError, "mapping")
    try:
        return ImportMapping.model_validate(data)
    except ValidationError as error:
        raise MappingError(f"{path}: {describe_validation(error)}") from error


# --- values ------------------------------------------------------------------------------


def slugify(text: str) -> str:
    """`'Group 56'` -> `'group-56'`: lowercase ASCII words joined by hyphens (at most 64)."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")[:64].rstrip("-")


def lookup(field: str, spec: ValueSpec[T], raw: str | None) -> T | str | None:
    """The mapped value of `raw` (None stays None unless there is a default)."""
    if raw is None:
        return spec.default
    if raw in spec.map:
        return spec.map[raw]
    if spec.slug:
        slug = slugify(raw)
        if not slug:
            raise Unmappable("unmapped_value", f"{field}: {raw!r} has no letters or digits")
        return slug
    if spec.default is not None:
        return spec.default
    raise Unmappable("unmapped_value", f"{field}: no mapping for {raw!r} in {field}.map")


def check_template(template: str) -> None:
    rest = _PLACEHOLDER.sub("", template)
    if "{" in rest or "}" in rest:
        raise ValueError(f"{template!r}: placeholders look like {{column}} or {{column|slug}}")


def template_names(template: str) -> list[str]:
    """The columns a template reads (built-in names left out)."""
    return [m.group(1) for m in _PLACEHOLDER.finditer(template) if m.group(1) not in BUILTIN_NAMES]


def render(template: str, values: Mapping[str, str | None]) -> str:
    """Fill `{name}` and `{name|slug}`; a null renders as 'unknown'."""

    def replace(match: re.Match[str]) -> str:
        value = values.get(match.group(1))
        text = "unknown" if value is None else value
        return (slugify(text) or "unknown") if match.group(2) else text

    return _PLACEHOLDER.sub(replace, template)
