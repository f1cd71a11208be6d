"""A real Chroma server for tests: `chroma run` as a subprocess on 127.0.0.1, on a free port.

`running_chroma_server(directory)` starts one with its data under `directory/data` (its log in
`directory/server.log`), waits for its heartbeat and yields it (`.url`, `.stop()`, `.start()`,
`.restart()`: a stopped server starts again on its port, so clients keep their URL); it stops
the server on exit. Without the `chroma` executable the test is skipped.

Nothing leaves the machine: the server listens on 127.0.0.1 only, its default single-node
config exports no traces, and its environment drops every OTEL_* and CHROMA_* variable (the
server reads CHROMA_* as config overrides, e.g. an OpenTelemetry endpoint). The Python clients
the tests use are built with anonymized_telemetry=False (botmem's own settings).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

START_TIMEOUT = 30.0
"""Seconds to wait for the heartbeat; a start takes ~1.3 s, mostly importing chromadb."""
STOP_TIMEOUT = 10.0
START_ATTEMPTS = 3
"""Another process can take the free port before the server binds it: then try another (or,
restarting on the same port, try it again after a pause)."""
REBIND_PAUSE = 0.5
HEARTBEAT = "/api/v2/heartbeat"


def chroma_executable() -> str | None:
    """The `chroma` CLI next to this interpreter (the venv's bin), else the one on PATH."""
    beside = Path(sys.executable).with_name("chroma")
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("chroma")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def offline_environment() -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("OTEL_", "CHROMA_"))
    }
    env["ANONYMIZED_TELEMETRY"] = "False"  # the Python side's switch, in case it is consulted
    env["OTEL_SDK_DISABLED"] = "true"
    return env


def _answers(url: str) -> bool:
    try:  # trust_env=False: a proxy from the environment must not see local requests
        return httpx.get(url + HEARTBEAT, timeout=1.0, trust_env=False).status_code == 200
    except httpx.HTTPError:
        return False


def _log_tail(log: Path, lines: int = 30) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()  # SIGTERM: the server shuts down cleanly, flushing its data
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class ChromaServer:
    """`chroma run` on a free port of 127.0.0.1 with its data in `directory/data`."""

    def __init__(self, executable: str, directory: Path):
        self.executable = executable
        self.data = directory / "data"
        self.log = directory / "server.log"
        self.url = ""
        self._process: subprocess.Popen[bytes] | None = None
        self.data.mkdir(parents=True, exist_ok=True)

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Serve on the port served before (`url` stays), else on a free port."""
        port = self.port
        for _ in range(START_ATTEMPTS):
            if self._try_start(port or free_port()):
                return
            if port:
                time.sleep(REBIND_PAUSE)
        raise RuntimeError(
            f"chroma server exited before answering, {START_ATTEMPTS} times; its log:\n"
            + _log_tail(self.log)
        )

    def stop(self) -> None:
        """Stop the server (SIGTERM); `url` stays what it was: nothing answers there."""
        if self._process is not None:
            _stop(self._process)
            self._process = None

    def restart(self) -> None:
        """Stop, then serve the same data again, on the same port (`url` stays)."""
        self.stop()
        self.start()

    @property
    def port(self) -> int | None:
        return int(self.url.rsplit(":", 1)[1]) if self.url else None

    def _try_start(self, port: int) -> bool:
        """False when the server exited before answering (e.g. its port was taken)."""
        url = f"http://127.0.0.1:{port}"
        command = [self.executable, "run", "--path", str(self.data)]
        command += ["--host", "127.0.0.1", "--port", str(port)]
        with self.log.open("ab") as out:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=offline_environment(),
                cwd=self.data,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if _answers(url):
                self._process, self.url = process, url
                return True
            if process.poll() is not None:
                return False
            time.sleep(0.05)
        _stop(process)
        raise RuntimeError(
            f"chroma server at {url} did not answer within {START_TIMEOUT:.0f} s; its log:\n"
            + _log_tail(self.log)
        )


@contextmanager
def running_chroma_server(directory: Path) -> Iterator[ChromaServer]:
    """A started ChromaServer with its data under `directory`, stopped at exit.

    Skips the test when the `chroma` executable is not installed.
    """
    executable = chroma_executable()
    if executable is None:
        pytest.skip("the `chroma` executable (chromadb's CLI) is not installed")
    server = ChromaServer(executable, directory)
    server.start()
    try:
        yield server
    finally:
        server.stop()
