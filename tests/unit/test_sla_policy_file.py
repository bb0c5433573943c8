"""SLA policy files: TOML into the definition the domain checks, with errors naming file and
field."""

from __future__ import annotations

from pathlib import Path

import pytest

from ticketing.domain.sla_definitions import build_policy
from ticketing.domain.sla_policy import SlaMetric
from ticketing.sla.policy_file import PolicyFileError, load_policy_file

EXAMPLE = Path(__file__).parents[2] / "mappings" / "sla.example.toml"

MINIMAL = """
policy = "default"
[default]
first_reply = 60
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sla.toml"
    path.write_text(text, encoding="utf-8")
    return path


def failure(tmp_path: Path, text: str) -> PolicyFileError:
    path = write(tmp_path, text)
    with pytest.raises(PolicyFileError) as caught:
        load_policy_file(path)
    assert caught.value.code == "policy_file_error"
    assert caught.value.message.startswith(f"{path}: ")
    return caught.value


def test_the_example_file_is_a_business_hours_policy_with_its_calendar() -> None:
    policy_file = load_policy_file(EXAMPLE)

    assert policy_file.policy_id == "default"
    assert policy_file.calendar_id == "office"
    assert policy_file.definition["targets"]["enterprise"]["urgent"] == {
        "first_reply": 30,
        "next_reply": 60,
        "resolution": 240,
    }
    office = policy_file.calendars["office"]
    assert office["time_zone"] == "Europe/Berlin"
    assert sorted(office["weekly_hours"]) == ["fri", "mon", "thu", "tue", "wed"]
    assert "2026-12-25" in office["holidays"]


def test_a_file_becomes_the_normal_form_the_domain_builds_a_policy_from(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        policy = "gold"
        warning_at = 0.5
        [default]
        first_reply = 480
        resolution = 4320
        [targets.enterprise.urgent]
        first_reply = 30
        [pauses]
        first_reply = ["pending", "on_hold"]
        """,
    )

    policy_file = load_policy_file(path)

    assert policy_file.policy_id == "gold"
    assert policy_file.calendar_id is None
    assert policy_file.calendars == {}
    assert policy_file.definition == {
        "calendar": None,
        "default": {"first_reply": 480, "resolution": 4320},
        "targets": {"enterprise": {"urgent": {"first_reply": 30}}},
        "pauses": {"first_reply": ["on_hold", "pending"]},
        "warning_at": 0.5,
    }
    policy = build_policy("gold", 1, policy_file.definition, None)
    assert policy.targets_for("enterprise", "urgent").minutes(SlaMetric.FIRST_REPLY) == 30
    assert policy.targets_for("standard", "low").minutes(SlaMetric.RESOLUTION) == 4320


def test_holidays_may_be_toml_dates_or_strings(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        MINIMAL
        + """
        [calendars.office]
        time_zone = "UTC"
        hours = { mon = [["09:00", "17:00"]] }
        holidays = [2026-12-25, "2026-12-26"]
        """,
    )

    assert load_policy_file(path).calendars["office"]["holidays"] == ["2026-12-25", "2026-12-26"]


def test_malformed_toml_names_the_file(tmp_path: Path) -> None:
    error = failure(tmp_path, 'policy = "default"\n[default\n')

    assert "not valid TOML" in error.message


def test_a_missing_file_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(PolicyFileError, match="cannot read the policy file"):
        load_policy_file(tmp_path / "nope.toml")


@pytest.mark.parametrize(
    ("text", "field", "words"),
    [
        (MINIMAL + "[targets.gold.urgent]\nfirst_reply = 5\n", "targets.gold", "'gold'"),
        (MINIMAL + "[targets.enterprise.asap]\nfirst_reply = 5\n", "targets.enterprise.asap", ""),
        ('policy = "p"\n[default]\nfirst_response = 5\n', "default.first_response", "metric"),
        (
            MINIMAL + "[targets.enterprise.urgent]\nsolve = 5\n",
            "targets.enterprise.urgent.solve",
            "",
        ),
        (MINIMAL + "[pauses]\nsolve = ['pending']\n", "pauses.solve", ""),
        (MINIMAL + "[pauses]\nresolution = ['waiting']\n", "pauses.resolution", "'waiting'"),
        ('policy = "p"\n[default]\nfirst_reply = -5\n', "default.first_reply", "positive"),
        ("warning_at = 2\n" + MINIMAL, "warning_at", "fraction"),
        ('calendar = "not an id"\n' + MINIMAL, "calendar", ""),
        ("escalate = true\n" + MINIMAL, "escalate", "unknown field"),
        (MINIMAL + "escalate = true\n", "default.escalate", "unknown metric"),
        ("[default]\nfirst_reply = 60\n", "policy", "identifier"),
    ],
)
def test_a_bad_policy_field_is_named(tmp_path: Path, text: str, field: str, words: str) -> None:
    error = failure(tmp_path, text)

    assert error.details["field"] == field
    assert f": {field}: " in error.message
    assert words in error.message


@pytest.mark.parametrize(
    ("calendar", "field"),
    [
        ('time_zone = "Mars/Olympus"\nhours = { mon = [["09:00", "17:00"]] }', "time_zone"),
        ('time_zone = "UTC"\nhours = { someday = [["09:00", "17:00"]] }', "hours"),
        ('time_zone = "UTC"\nhours = { mon = [["17:00", "09:00"]] }', "hours"),
        ('time_zone = "UTC"\nhours = { mon = [["9 am", "17:00"]] }', "hours"),
        (
            'time_zone = "UTC"\nhours = { mon = [["09:00", "17:00"]] }\nholidays = ["soon"]',
            "holidays",
        ),
        ('time_zone = "UTC"', "hours"),
        ('hours = { mon = [["09:00", "17:00"]] }', "time_zone"),
        ('time_zone = "UTC"\nhours = {}\nclosed = true', "closed"),
    ],
)
def test_a_bad_calendar_field_is_named(tmp_path: Path, calendar: str, field: str) -> None:
    error = failure(tmp_path, f"{MINIMAL}\n[calendars.office]\n{calendar}\n")

    assert error.details["field"] == f"calendars.office.{field}"
    assert f": calendars.office.{field}: " in error.message
