"""Run the HTTP API on uvicorn, in the event loop of a started botmem App."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import signal
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence

from botmem.adapter import Adapter
from botmem.app import App
from botmem.config import Settings
from botmem.errors import ConfigError
from botmem.server.api import create_api
from botmem.server.api_adapter import ApiAdapter

log = logging.getLogger(__name__)


def api_key(settings: Settings, host: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The key requests must send; refuses to serve beyond loopback without one."""
    environ = os.environ if environ is None else environ
    name = settings.server.api_key_env
    if name:
        key = environ.get(name, "")
        if not key:
            raise ConfigError(
                f"the environment variable {name} (the API key) is empty or not set",
                key="server.api_key_env",
                source=settings.source,
            )
        return key
    if not _is_loopback(host):
        raise ConfigError(
            f"serving on {host} without an API key would let anyone read every agent's "
            "memory: set api_key_env (or listen on 127.0.0.1)",
            key="server.api_key_env",
            source=settings.source,
        )
    return None


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Server:
    """uvicorn's Server without its own signal handling: botmem stops it (and the App)."""

    def __init__(self, api: object, host: str, port: int, max_body: int):
        import uvicorn

        class Quiet(uvicorn.Server):
            @contextlib.contextmanager
            def capture_signals(self) -> Iterator[None]:
                yield

        config = uvicorn.Config(
            api,  # type: ignore[arg-type]
            host=host,
            port=port,
            lifespan="off",
            log_level="warning",
            access_log=False,
            h11_max_incomplete_event_size=max_body,
        )
        self.server = Quiet(config)

    def url(self) -> str:
        sock = self.server.servers[0].sockets[0]
        host, port = sock.getsockname()[:2]
        return f"http://{host}:{port}"


@contextlib.asynccontextmanager
async def http_api(
    app: App, adapter: ApiAdapter, *, host: str, port: int, key: str | None
) -> AsyncIterator[str]:
    """Serve the API of a started `app` (port 0: any free port); yields its base URL."""
    server = _Server(
        create_api(app, adapter, api_key=key), host, port, app.settings.server.max_body_bytes
    )
    task = asyncio.create_task(server.server.serve(), name="botmem-http")
    while not server.server.started:
        if task.done():
            task.result()  # the port is taken, say: raise why
            raise RuntimeError("the HTTP server stopped before it started")
        await asyncio.sleep(0.01)
    try:
        yield server.url()
    finally:
        server.server.should_exit = True
        await task


async def serve(settings: Settings, adapters: Sequence[Adapter], *, host: str, port: int) -> None:
    """`botmem serve`: the chat platforms of the config plus the HTTP API, until a signal."""
    key = api_key(settings, host)
    adapter = ApiAdapter()
    async with await App.open(settings) as app:
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stopping.set)
        await app.start([*adapters, adapter])
        async with http_api(app, adapter, host=host, port=port, key=key) as url:
            names = ", ".join(a.name for a in adapters) or "no chat platform"
            auth = "API key required" if key else "no API key (loopback only)"
            log.info("serving the API on %s (%s) and %s; Ctrl-C to stop", url, auth, names)
            await stopping.wait()
            log.info(
                "stopping: letting running turns finish (up to %.0f s)",
                settings.runtime.shutdown_grace,
            )
        await app.shutdown(settings.runtime.shutdown_grace)
    log.info("stopped")
