"""`botmem` command line. Imports stay light here: `botmem --help` must be instant."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from botmem.config import Settings

ROLES = ("all", "gateway", "worker", "gateway+worker")
Command = Callable[[argparse.Namespace], Coroutine[Any, Any, int]]


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from botmem.errors import BotmemError

    try:
        settings = _settings(args)
        _setup_logging(settings.runtime.log_level, args.verbose)
        return asyncio.run(args.command(args, settings))
    except BotmemError as exc:
        print(f"botmem: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    from botmem import __version__

    parser = argparse.ArgumentParser(prog="botmem", description="Chat bots that remember.")
    parser.add_argument("--version", action="version", version=f"botmem {__version__}")
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    run = _command(sub, "run", "run the bot on every chat platform configured in the file", _run)
    run.add_argument(
        "--role",
        choices=ROLES,
        default="all",
        help="all: one process does everything (default); with several processes on one "
        "database: gateway (the chat platforms, commands and sending replies), worker (the "
        "agents' turns and background work), gateway+worker (both, e.g. behind a load "
        "balancer)",
    )
    worker = _command(sub, "worker", "run agents' turns for gateways on the same database", _run)
    worker.set_defaults(role="worker")
    serve = _command(
        sub, "serve", "run the bot and the Letta-compatible HTTP API (see [server])", _serve
    )
    serve.add_argument("--host", help="address to listen on (default: [server] host, 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default: [server] port, 8283; 0: any)")
    chat = _command(sub, "chat", "chat with a user's agent in the terminal (or via stdin)", _chat)
    chat.add_argument("--user", required=True, help="whose agent (agent key console:USER)")

    jobs = sub.add_parser("jobs", help="list or cancel scheduled jobs (check-ins, consolidations)")
    jobs_sub = jobs.add_subparsers(required=True, metavar="ACTION")
    listing = _command(jobs_sub, "list", "print the active scheduled jobs", _jobs_list)
    listing.add_argument("--agent", help="only this agent's jobs, e.g. telegram:42")
    cancel = _command(jobs_sub, "cancel", "cancel a scheduled job", _jobs_cancel)
    cancel.add_argument("job_id", type=int, help="the job's number (see `botmem jobs list`)")

    mem = sub.add_parser("memory", help="view, export, import or wipe an agent's memory")
    mem_sub = mem.add_subparsers(required=True, metavar="ACTION")
    show = _command(mem_sub, "show", "print the agent's memory blocks", _memory_show)
    export = _command(mem_sub, "export", "write the agent as JSON to stdout", _memory_export)
    wipe = _command(mem_sub, "wipe", "forget everything about the agent", _memory_wipe)
    wipe.add_argument("--yes", action="store_true", help="do it (without this, nothing happens)")
    imp = _command(mem_sub, "import", "create an agent from an export file", _memory_import)
    imp.add_argument("file", help="a file written by `botmem memory export` ('-' for stdin)")
    imp.add_argument("--replace", action="store_true", help="wipe an existing agent first")
    for cmd in (show, export, wipe):
        _add_agent_args(cmd, required=True)
    _add_agent_args(imp, required=False)
    return parser


def _command(
    sub: Any, name: str, help_text: str, func: Callable[..., Coroutine[Any, Any, int]]
) -> argparse.ArgumentParser:
    cmd: argparse.ArgumentParser = sub.add_parser(name, help=help_text, description=help_text)
    cmd.add_argument(
        "--config", metavar="PATH", help="config file (default: ./config.toml if it exists)"
    )
    cmd.add_argument("-v", "--verbose", action="store_true", help="debug logging on stderr")
    cmd.set_defaults(command=func)
    return cmd


def _add_agent_args(cmd: argparse.ArgumentParser, *, required: bool) -> None:
    group = cmd.add_mutually_exclusive_group(required=required)
    group.add_argument("--user", help="a console user (agent key console:USER)")
    group.add_argument("--agent", help="any agent key, e.g. telegram:42")


def _agent_key(args: argparse.Namespace) -> str | None:
    if getattr(args, "agent", None):
        return str(args.agent)
    return f"console:{args.user}" if getattr(args, "user", None) else None


def _settings(args: argparse.Namespace) -> Settings:
    from pathlib import Path

    from botmem.config import load_settings

    path = args.config
    if path is None and Path("config.toml").exists():
        path = "config.toml"
    return load_settings(path)


def _setup_logging(level: str, verbose: bool) -> None:
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.DEBUG if verbose else getattr(logging, level),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in (
        "LiteLLM",
        "litellm",
        "httpx",
        "httpcore",
        "asyncio",
        "apscheduler",
        "tzlocal",
        "telegram",  # logs its Bot API URL, which holds the bot token, at DEBUG
    ):
        logging.getLogger(noisy).setLevel(logging.WARNING)


async def _chat(args: argparse.Namespace, settings: Settings) -> int:
    from adapters.console import ConsoleAdapter
    from botmem.app import App

    adapter = ConsoleAdapter(args.user)
    if sys.stdin.isatty() and sys.stdout.isatty() and not args.verbose:
        logging.getLogger().setLevel(logging.WARNING)  # keep the conversation readable
        print(f"Chatting with {adapter.agent_key}; Ctrl-D to end.", file=sys.stderr)
    async with await App.open(settings) as app:
        await app.serve([adapter])
    return 0


async def _run(args: argparse.Namespace, settings: Settings) -> int:
    import signal

    from botmem.app import App
    from botmem.platforms import build_adapters

    role = args.role
    _check_role(role, settings)
    # Fails fast on a missing SDK or token; a worker serves no platform.
    adapters = [] if role == "worker" else build_adapters(settings)
    log = logging.getLogger("botmem")
    async with await App.open(settings) as app:
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stopping.set)
        if role == "all":
            await app.start(adapters)
        else:
            await app.start_shared(adapters, turns=role != "gateway")
        names = ", ".join(a.name for a in adapters) or "no chat platform"
        log.info("running on %s (role %s); Ctrl-C to stop", names, role)
        await stopping.wait()
        grace = settings.runtime.shutdown_grace
        log.info("stopping: letting running turns finish (up to %.0f s)", grace)
        await app.shutdown(grace)
    log.info("stopped")
    return 0


async def _serve(args: argparse.Namespace, settings: Settings) -> int:
    from botmem.errors import ConfigError
    from botmem.platforms import build_adapters

    try:
        from botmem.server.serve import serve
    except ImportError as exc:
        raise ConfigError(
            f'`botmem serve` needs the server extra: pip install "botmem[server]" ({exc})'
        ) from exc
    host = args.host or settings.server.host
    port = settings.server.port if args.port is None else args.port
    adapters = build_adapters(settings) if settings.platforms() else []  # API alone is fine
    await serve(settings, adapters, host=host, port=port)
    return 0


def _check_role(role: str, settings: Settings) -> None:
    """Several processes share the vectors only through a Chroma server."""
    from botmem.errors import ConfigError

    if role != "all" and not settings.storage.chroma_url:
        raise ConfigError(
            f"--role {role} shares the data with other botmem processes: set chroma_url to a "
            "Chroma server (the embedded vector store belongs to one process)",
            key="storage.chroma_url",
            source=settings.source,
        )


async def _jobs_list(args: argparse.Namespace, settings: Settings) -> int:
    from zoneinfo import ZoneInfo

    from botmem.app import open_stores
    from botmem.schedules import describe

    stores = await open_stores(settings)
    try:
        jobs = await stores.jobs.active(args.agent)
    finally:
        await stores.aclose()
    for job in jobs:
        when = f"{describe(job.trigger, ZoneInfo(job.timezone))} ({job.timezone})"
        due = job.next_run_at.isoformat() if job.next_run_at else "-"
        note = job.payload.get("note") or job.payload.get("reason") or ""
        print(f"{job.id}\t{job.kind}\t{job.agent_key}\t{when}\tnext {due}\t{note}")
    if not jobs:
        print("botmem: no active jobs", file=sys.stderr)
    return 0


async def _jobs_cancel(args: argparse.Namespace, settings: Settings) -> int:
    from botmem.app import open_stores

    stores = await open_stores(settings)
    try:
        cancelled = await stores.jobs.cancel(args.job_id)
    finally:
        await stores.aclose()
    if not cancelled:
        print(f"botmem: no active job {args.job_id}", file=sys.stderr)
        return 1
    print(f"cancelled job {args.job_id}", file=sys.stderr)
    return 0


async def _memory_show(args: argparse.Namespace, settings: Settings) -> int:
    from botmem.app import open_stores

    stores = await open_stores(settings)
    try:
        key = _agent_key(args) or ""
        if await stores.agents.get(key) is None:
            print(f"botmem: no agent {key!r} yet", file=sys.stderr)
            return 1
        for block in await stores.blocks.for_agent(key):
            flags = " read-only" if block.read_only else ""
            flags += f" shared:{block.shared_name}" if block.shared_name else ""
            print(f"[{block.label}] {len(block.value)}/{block.limit} chars{flags}")
            print(block.value or "(empty)")
            print()
    finally:
        await stores.aclose()
    return 0


async def _memory_export(args: argparse.Namespace, settings: Settings) -> int:
    from botmem.agentfile import export_agent
    from botmem.app import open_stores, utc_now

    stores = await open_stores(settings)
    try:
        data = await export_agent(stores, _agent_key(args) or "", utc_now())
    finally:
        await stores.aclose()
    json.dump(data, sys.stdout, ensure_ascii=False, indent=2)
    sys.stdout.write("\n")
    return 0


async def _memory_import(args: argparse.Namespace, settings: Settings) -> int:
    from botmem.agent.retrieval import Retriever
    from botmem.agentfile import AgentFileError, import_agent
    from botmem.app import build_embedder, open_stores

    try:
        with sys.stdin if args.file == "-" else open(args.file, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, json.JSONDecodeError) as exc:
        raise AgentFileError(f"cannot read {args.file}: {exc}") from None
    embedder = build_embedder(settings)
    stores = await open_stores(settings, model=embedder.name)
    try:
        retriever = Retriever(stores, embedder, settings.retrieval)
        key = await import_agent(stores, retriever, data, _agent_key(args), replace=args.replace)
    finally:
        await stores.aclose()
    print(f"imported agent {key}", file=sys.stderr)
    return 0


async def _memory_wipe(args: argparse.Namespace, settings: Settings) -> int:
    from botmem.app import open_stores

    key = _agent_key(args) or ""
    if not args.yes:
        print(f"botmem: this forgets everything about {key}; add --yes to do it", file=sys.stderr)
        return 1
    stores = await open_stores(settings)
    try:
        await stores.wipe_agent(key)
    finally:
        await stores.aclose()
    print(f"wiped agent {key}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
