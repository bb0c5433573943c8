"""The signed checkpoint log on its own: each aggregate's newest signed head is found from the
log's end (across read blocks), and a forged or removed checkpoint on the way is reported."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import replay.checkpoint as checkpoint_module
from replay.checkpoint import Checkpoint, CheckpointLog

KEY = "ab" * 32
A, B, C = "aaaaaaaa-0000-0000-0000-000000000000", "bbbbbbbb-0000-0000-0000-000000000000", "c"


@pytest.fixture
def signed_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CheckpointLog:
    """Three checkpoints: A and B at v1, then A at v2, then B at v3; read in 7-byte blocks."""
    monkeypatch.setenv("TICKETING_CHECKPOINT_KEY", KEY)
    monkeypatch.setattr(checkpoint_module, "READ_BLOCK", 7)
    log = CheckpointLog(tmp_path / "audit")
    previous = ""
    lines = []
    for number, heads in enumerate(
        [{A: [1, "a1"], B: [1, "b1"]}, {A: [2, "a2"]}, {B: [3, "b3"]}], start=1
    ):
        signed = log.sign(Checkpoint(number * 10, number, "d", "t", previous=previous, heads=heads))
        lines.append(signed.as_json())
        previous = signed.mac
    log.directory.mkdir(parents=True)
    log.path.write_text("\n".join(lines) + "\n")
    return log


def test_each_aggregate_gets_its_newest_signed_head(signed_log: CheckpointLog) -> None:
    # When
    a, b, c = (signed_log.signed_head(x) for x in (A, B, C))
    # Then
    assert a.head is not None and (a.head.version, a.head.event_hash) == (2, "a2")
    assert a.head.notification_id == 20 and a.checkpoints_read == 2
    assert b.head is not None and (b.head.version, b.checkpoints_read) == (3, 1)
    assert (c.head, c.checkpoints_read, c.findings) == (None, 3, [])
    assert signed_log.findings(signed_log.read()) == []


def test_a_removed_checkpoint_is_reported_on_the_way_to_a_head(signed_log: CheckpointLog) -> None:
    # Given
    lines = signed_log.path.read_text().splitlines()
    # When
    signed_log.path.write_text(f"{lines[0]}\n{lines[2]}\n")
    # Then
    lookup = signed_log.signed_head(A)
    assert lookup.head is not None and lookup.head.version == 1
    assert [f.code for f in lookup.findings] == ["checkpoint_missing"]
    assert [f.code for f in signed_log.findings(signed_log.read())] == ["checkpoint_missing"]


def test_a_forged_head_is_reported_and_not_trusted(signed_log: CheckpointLog) -> None:
    # Given
    lines = signed_log.path.read_text().splitlines()
    forged = json.loads(lines[1])
    forged["heads"][A] = [9, "a9"]
    # When
    signed_log.path.write_text(f"{lines[0]}\n{json.dumps(forged)}\n{lines[2]}\n")
    # Then
    lookup = signed_log.signed_head(A)
    assert lookup.head is not None and lookup.head.version == 1
    assert [f.code for f in lookup.findings] == ["checkpoint_forged", "checkpoint_missing"]


def test_a_checkpoint_without_heads_ends_the_search(signed_log: CheckpointLog) -> None:
    """Checkpoints signed before they carried heads verify as before; nothing older than the
    newest of them can name a head."""
    # Given
    old = signed_log.sign(Checkpoint(5, 1, "d", "t"))
    lines = signed_log.path.read_text().splitlines()
    # When
    signed_log.path.write_text(f"{old.as_json()}\n" + "\n".join(lines) + "\n")
    # Then
    assert signed_log.authentic(signed_log.read()[0])
    assert signed_log.signed_head(C).checkpoints_read == 4


def test_a_garbled_line_is_a_forged_checkpoint(signed_log: CheckpointLog) -> None:
    # Given
    lines = signed_log.path.read_text().splitlines()
    # When
    signed_log.path.write_text(f"{lines[0]}\n{lines[1]}\nnot json {{\n{lines[2]}\n")
    # Then
    assert [f.code for f in signed_log.findings(signed_log.read())] == ["checkpoint_forged"]
    assert [f.code for f in signed_log.signed_head(A).findings] == ["checkpoint_forged"]
