"""The data directory on real files: private modes, no home made up by a typo, reading a home
that cannot be written, a damaged queue file named with its fix, and option ranges."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.unit.test_cli import Cli, open_new_ticket, run_main
from ticketing.cli.context import CliError
from ticketing.home import HomeNotFoundError, serve_lock, serving_pid

pytestmark = pytest.mark.integration

READING = {
    "show": ["show", "{tid}"],
    "log": ["log", "{tid}"],
    "history": ["history", "{tid}"],
    "verify chain": ["verify", "chain"],
    "verify chain T": ["verify", "chain", "{tid}"],
    "verify projections": ["verify", "projections"],
    "queue": ["queue"],
    "queue --as-of": ["queue", "--as-of", "2030-01-01T00:00:00Z"],
    "export": ["export"],
    "kpi": ["kpi"],
    "sql": ["sql", "SELECT count(*) FROM ticket_facts"],
    "sla report": ["sla", "report"],
    "sla show": ["sla", "show"],
    "account show": ["account", "show", "acme"],
    "status": ["status"],
}
"""Commands that only read: on a home that does not exist they are refused, and they work on
a home that cannot be written."""

NEEDS_A_HOME = {
    **READING,
    "checkpoint": ["checkpoint"],
    "rebuild queue": ["rebuild", "queue"],
    "agent show": ["agent", "show", "ana"],
}

WRITING = {
    "tag": (["tag", "{tid}", "vpn"], "store_read_only"),
    "account create": (["account", "create", "beta", "--name", "Beta"], "store_read_only"),
    "sla publish": (["sla", "publish", "{policy}"], "store_read_only"),
    "checkpoint": (["checkpoint"], "store_read_only"),
    "rebuild queue": (["rebuild", "queue"], "store_read_only"),
}


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def modes(home: Path) -> dict[str, int]:
    """Every directory and file under `home` (the home too, as '.') with its permission bits."""
    found = {".": mode(home)}
    for path in home.rglob("*"):
        found[str(path.relative_to(home))] = mode(path)
    return found


def not_private(home: Path) -> dict[str, str]:
    return {name: oct(bits) for name, bits in modes(home).items() if bits & 0o077}


@pytest.fixture
def built_home(tmp_path: Path) -> tuple[Path, str]:
    """A home with a ticket, both projections, a signed checkpoint and a policy file beside."""
    home = tmp_path / "home"
    ticketing = Cli(home)
    tid = open_new_ticket(ticketing)
    ticketing.ok("rebuild", "queue")
    ticketing.ok("rebuild", "analytics", "--workers", "0")
    ticketing.ok("checkpoint")
    (tmp_path / "sla.toml").write_text('policy = "default"\n[default]\nfirst_reply = 60\n')
    return home, tid


@pytest.fixture
def read_only_home(built_home: tuple[Path, str], tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """The built home, seen through a read-only bind mount (root, whom permission bits never
    stop); for another user, the same home with every write bit removed."""
    home, tid = built_home
    if os.geteuid() != 0:
        for path in [home, *home.rglob("*")]:
            path.chmod(mode(path) & ~0o222)
        yield home, tid
        for path in [home, *home.rglob("*")]:
            path.chmod(mode(path) | 0o200)
        return
    view = tmp_path / "read-only"
    view.mkdir()
    try:
        subprocess.run(["mount", "--bind", str(home), str(view)], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError) as error:
        pytest.skip(f"root, but cannot bind-mount a read-only view of the home here: {error}")
    try:
        subprocess.run(
            ["mount", "-o", "remount,ro,bind", str(view)], check=True, capture_output=True
        )
        with pytest.raises(OSError):
            (view / "probe").touch()
        yield view, tid
    finally:
        subprocess.run(["umount", str(view)], check=True, capture_output=True)


def fill(args: list[str], tid: str, tmp_path: Path) -> list[str]:
    return [a.format(tid=tid, policy=tmp_path / "sla.toml") for a in args]


# --- private files -------------------------------------------------------------------------


def test_a_first_write_makes_a_private_home_and_store(tmp_path: Path) -> None:
    # Given no home yet
    home = tmp_path / "new" / "home"
    # When the real entry point writes the first account
    result = run_main(home, "account", "create", "acme", "--name", "Acme")
    # Then the home is the owner's alone, and so are the store's files
    assert result.returncode == 0, result.stderr
    assert mode(home) == 0o700
    assert not_private(home) == {}
    assert (home / "events.sqlite").exists()


def test_a_world_readable_home_from_before_is_made_private_when_next_opened(
    built_home: tuple[Path, str],
) -> None:
    # Given a home as earlier versions left it: 0755 directories, 0644 files
    home, tid = built_home
    for path in [home, *home.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    assert not_private(home)
    # When a reading command opens it
    result = run_main(home, "log", tid)
    # Then everything in it is the owner's alone, and nothing else changed
    assert result.returncode == 0, result.stderr
    assert not_private(home) == {}
    assert mode(home / "audit") == 0o700
    assert mode(home / "queue.sqlite") == 0o600


# --- a home that does not exist -------------------------------------------------------------


@pytest.mark.parametrize("case", list(NEEDS_A_HOME))
def test_commands_that_read_a_home_that_does_not_exist_fail_and_create_nothing(
    tmp_path: Path, case: str
) -> None:
    # Given a mistyped home
    home = tmp_path / "mistyped"
    # When a command that reads it runs
    result = Cli(home).invoke(*fill(NEEDS_A_HOME[case], "0" * 32, tmp_path))
    # Then it is refused as not found, naming the path, and no home appears
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, HomeNotFoundError), result.exception
    assert f"no ticketing home at {home}" in result.exception.message
    assert not home.exists()


def test_verify_chain_on_a_mistyped_home_is_one_not_found_line_not_an_intact_chain(
    tmp_path: Path,
) -> None:
    # Given a home with a ticket, and a typo of its path
    home = tmp_path / "home"
    open_new_ticket(Cli(home))
    typo = tmp_path / "hoem"
    # When the chain of the typo is verified through the real entry point
    result = run_main(typo, "verify", "chain")
    # Then it fails with one line naming the path and how homes are made
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith(f"error: not_found: no ticketing home at {typo}: ")
    assert len(result.stderr.splitlines()) == 1
    assert not typo.exists()


def test_an_empty_directory_is_no_home_for_reading_and_gets_no_store(tmp_path: Path) -> None:
    # Given a directory without an event store
    home = tmp_path / "empty"
    home.mkdir()
    # When the store is read
    result = Cli(home).invoke("verify", "chain")
    # Then it is refused, and no store is created there
    assert isinstance(result.exception, HomeNotFoundError), result.output
    assert list(home.iterdir()) == []


# --- a read-only home -----------------------------------------------------------------------


@pytest.mark.parametrize("case", list(READING))
def test_reading_commands_work_on_a_read_only_home(
    read_only_home: tuple[Path, str], tmp_path: Path, case: str
) -> None:
    # Given a home that cannot be written
    home, tid = read_only_home
    # When a reading command runs through the real entry point
    result = run_main(home, *fill(READING[case], tid, tmp_path))
    # Then it reads (status only says nothing runs there; sla show that no policy exists)
    if case == "sla show":
        assert result.stderr.startswith("error: not_found: policy 'default'"), result.stderr
        return
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout


@pytest.mark.parametrize("case", list(WRITING))
def test_writes_on_a_read_only_home_fail_with_store_read_only(
    read_only_home: tuple[Path, str], tmp_path: Path, case: str
) -> None:
    # Given a home that cannot be written
    home, tid = read_only_home
    before = modes(home)
    args, code = WRITING[case]
    # When a command that writes runs
    result = run_main(home, *fill(args, tid, tmp_path))
    # Then it is refused with one clear line, before anything is written
    assert result.returncode == 1, result.stdout
    assert result.stderr.startswith(f"error: {code}: the ticketing home is read-only"), (
        result.stderr
    )
    assert len(result.stderr.splitlines()) == 1
    assert modes(home) == before


# --- a damaged queue file -------------------------------------------------------------------


@pytest.mark.parametrize("args", [["queue"], ["verify", "projections"]])
def test_a_damaged_queue_file_is_named_with_the_fix_and_a_rebuild_repairs_it(
    built_home: tuple[Path, str], args: list[str]
) -> None:
    # Given a queue file overwritten with bytes that are not SQLite
    home, tid = built_home
    queue = home / "queue.sqlite"
    queue.write_bytes(os.urandom(4096))
    # When the queue is read
    result = run_main(home, *args)
    # Then the error names the file and the command that repairs it
    assert result.returncode == 1
    assert result.stderr == (
        f"error: projection_corrupt: {queue} is not a valid queue projection "
        "(file is not a database); run: ticketing rebuild queue\n"
    )
    # And that command does
    assert run_main(home, "rebuild", "queue").returncode == 0
    repaired = run_main(home, *args)
    assert repaired.returncode == 0, repaired.stderr
    assert tid in repaired.stdout or "ok" in repaired.stdout


# --- option ranges --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["queue", "--limit", "0"], "--limit"),
        (["queue", "--limit", "-1"], "--limit"),
        (["queue", "--limit", "10001"], "--limit"),
        (["demo", "--tickets", "0"], "--tickets"),
    ],
)
def test_out_of_range_numbers_are_usage_errors_naming_the_option(
    built_home: tuple[Path, str], args: list[str], option: str
) -> None:
    # Given a home
    home, _ = built_home
    # When a number outside the option's range is given
    result = run_main(home, *args)
    # Then it is one usage error naming the option, not a pydantic dump
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: usage_error: Invalid value for '{option}': ")
    assert len(result.stderr.splitlines()) == 1


def test_the_in_process_cli_refuses_the_range_before_reading_anything(tmp_path: Path) -> None:
    result = Cli(tmp_path / "absent").invoke("queue", "--limit", "0")
    assert result.exit_code == 2
    assert not isinstance(result.exception, CliError)
    assert "--limit" in result.output


# --- one serve per home ---------------------------------------------------------------------

TRY_LOCK = """
import sys
from pathlib import Path
from ticketing.home import AlreadyRunningError, serve_lock
try:
    with serve_lock(Path(sys.argv[1])):
        print("locked")
except AlreadyRunningError as error:
    print(error.code, error.message)
"""


def try_lock(home: Path) -> str:
    result = subprocess.run(
        [sys.executable, "-c", TRY_LOCK, str(home)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return result.stdout.strip()


def test_the_serve_lock_refuses_another_process_naming_the_holder_until_released(
    tmp_path: Path,
) -> None:
    # Given a process holding a home's serve lock
    home = tmp_path / "home"
    with serve_lock(home):
        # When another process asks for it
        refused = try_lock(home)
        # Then it is refused, naming the holder's PID, which status can read too
        assert refused == (
            f"already_running ticketing serve is already running on {home} (pid {os.getpid()}); "
            "stop it first, or use another --home"
        )
        assert serving_pid(home) == os.getpid()
    # And once released, the next one gets it
    assert serving_pid(home) is None
    assert try_lock(home) == "locked"
    assert mode(home / "serve.lock") == 0o600
