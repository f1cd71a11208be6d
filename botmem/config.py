"""TOML file + BOTMEM_* environment variables -> validated settings.

Errors name the bad key and the file they came from. Secrets never live in the file: the file
names the environment variable that holds them (`api_key_env`).
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from botmem.errors import ConfigError
from botmem.platform_config import (
    DiscordSettings,
    PlatformSettings,
    SlackSettings,
    TelegramSettings,
)
from botmem.types import BlockSpec

ENV_PREFIX = "BOTMEM_"
DEFAULT_PERSONA = (
    "I am a helpful assistant with a long memory. I remember what people tell me and use it "
    "to be more useful to them over time."
)
DEFAULT_HUMAN = "Nothing known about this person yet."

# Provider prefix -> the environment variable litellm reads its key from.
PROVIDER_KEY_ENV = {
    "openai": "OPENAI_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
    "gemini": "GEMINI_API_KEY",
    "groq": "GROQ_API_KEY",
    "mistral": "MISTRAL_API_KEY",
    "deepseek": "DEEPSEEK_API_KEY",
    "openrouter": "OPENROUTER_API_KEY",
    "together_ai": "TOGETHERAI_API_KEY",
    "xai": "XAI_API_KEY",
}


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class LLMSettings(_Section):
    model: str = ""
    api_base: str = ""
    api_key_env: str = ""
    context_window: int = Field(default=0, ge=0)
    max_steps: int = Field(default=10, ge=1, le=100)
    fallbacks: list[str] = Field(default_factory=list)
    timeout: float = Field(default=60.0, gt=0)
    max_retries: int = Field(default=2, ge=0, le=10)
    retry_backoff: float = Field(default=0.5, ge=0, le=60)
    """Seconds before the first retry; each next one waits twice as long (plus jitter)."""
    breaker_cooldown: float = Field(default=60.0, ge=0)
    """With fallbacks: after 3 calls in a row failed on the model, skip it this long (0: off)."""
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_reply_tokens: int = Field(default=1024, ge=16)
    direct_http: bool = True
    """openai/ and hosted_vllm/ models on an api_base: sent by botmem's own HTTP client, not
    litellm (~8 ms less CPU per call, and litellm is not imported)."""

    def key_env_name(self) -> str | None:
        """The env var that must hold the API key, or None when no key is needed."""
        if self.api_key_env:
            return self.api_key_env
        if self.api_base:  # a local OpenAI-compatible server usually needs no key
            return None
        return PROVIDER_KEY_ENV.get(self.model.split("/", 1)[0])


class StorageSettings(_Section):
    data_dir: str = "./botmem-data"
    database_url: str = ""
    chroma_url: str = ""
    """A Chroma server (e.g. http://localhost:8000); empty: embedded, under data_dir/chroma."""
    chroma_shards: int = Field(default=16, ge=1, le=4096)
    vector_cache: int = Field(default=50_000, ge=0)
    """Vectors of recently searched agents kept in RAM (~1.5 KB each); 0 turns it off."""
    pool_size: int = Field(default=10, ge=1, le=1000)
    """Connections one process keeps open to a database server (not used for SQLite)."""

    def chroma_path(self) -> Path:
        return Path(self.data_dir).expanduser() / "chroma"

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{Path(self.data_dir).expanduser() / 'botmem.db'}"


class EmbeddingSettings(_Section):
    provider: str = Field(default="local", pattern=r"^(local|litellm)$")
    model: str = ""
    """For provider "litellm": any litellm embedding model, e.g. openai/text-embedding-3-small."""
    api_base: str = ""
    api_key_env: str = ""
    dimensions: int = Field(default=0, ge=0)
    """For provider "litellm": the model's vector size."""

    @model_validator(mode="after")
    def _litellm_needs_model(self) -> EmbeddingSettings:
        if self.provider == "litellm" and not (self.model and self.dimensions):
            raise ValueError('provider "litellm" needs model and dimensions')
        return self


class RetrievalSettings(_Section):
    candidates: int = Field(default=50, ge=5, le=1000)
    text_weight: float = Field(default=0.4, ge=0, le=1)


class BlockSettings(_Section):
    label: str = Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")
    value: str = ""
    limit: int = Field(default=5000, ge=1, le=200_000)
    description: str = ""
    read_only: bool = False
    shared: str = ""
    """When set, one block with this name is shared by every agent (e.g. "org")."""

    def spec(self) -> BlockSpec:
        return BlockSpec(self.label, self.value, self.limit, self.description, self.read_only)


class AgentSettings(_Section):
    persona: str = DEFAULT_PERSONA
    human: str = DEFAULT_HUMAN
    block_limit: int = Field(default=5000, ge=100, le=200_000)
    system: str = ""
    """Extra instructions appended to the built-in system prompt."""
    timezone: str = "UTC"
    blocks: list[BlockSettings] = Field(default_factory=list)
    max_repeated_calls: int = Field(default=3, ge=2)
    search_page_size: int = Field(default=5, ge=1, le=50)

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(
                f"unknown timezone {value!r} (use an IANA name like Europe/Paris)"
            ) from exc
        return value

    def block_specs(self) -> list[tuple[BlockSpec, str | None]]:
        """Default blocks for a new agent: persona, human, then [[agent.blocks]]."""
        specs: list[tuple[BlockSpec, str | None]] = [
            (
                BlockSpec(
                    "persona",
                    self.persona,
                    self.block_limit,
                    "Who you are: your personality and how you speak.",
                ),
                None,
            ),
            (
                BlockSpec(
                    "human",
                    self.human,
                    self.block_limit,
                    "What you know about the person you are talking with.",
                ),
                None,
            ),
        ]
        specs += [(b.spec(), b.shared or None) for b in self.blocks]
        return specs


class ContextSettings(_Section):
    trigger: float = Field(default=0.75, gt=0, le=1)
    """Summarize when the prompt would exceed this share of the context window."""
    target: float = Field(default=0.5, gt=0, lt=1)
    """...and evict the oldest messages until it is below this share."""
    summary_max_tokens: int = Field(default=512, ge=32)


class CheckinSettings(_Section):
    enabled: bool = True
    allowed_hours: str = "0-24"
    """Hours of the person's day check-ins may fire, "start-end" (e.g. "8-21"); "0-24": any."""
    quiet_hours: str = ""
    """Hours when no check-in fires, e.g. "22-7" (may wrap midnight); empty: none."""
    max_per_day: int = Field(default=20, ge=1, le=1000)
    """Check-ins fired per agent per day (in the person's timezone); more are skipped."""
    max_delay_hours: float = Field(default=12.0, ge=0)
    """A check-in missed while the bot was down is sent late (saying so) up to this many
    hours after its time; later than that it is skipped and logged."""

    @field_validator("allowed_hours", "quiet_hours")
    @classmethod
    def _hour_range(cls, value: str) -> str:
        if value and parse_hours(value) is None:
            raise ValueError(f'{value!r} is not an hour range like "8-21"')
        return value


def parse_hours(value: str) -> tuple[int, int] | None:
    """ "8-21" -> (8, 21); None when malformed. A range may wrap midnight ("22-7")."""
    start, sep, end = value.partition("-")
    if not sep or not (start.strip().isdigit() and end.strip().isdigit()):
        return None
    first, last = int(start), int(end)
    return (first, last) if 0 <= first <= 24 and 0 <= last <= 24 else None


class ConsolidationSettings(_Section):
    enabled: bool = True
    schedule: str = "0 3 * * *"
    """When every active agent's memory is consolidated (crontab, in [agent] timezone)."""
    every_turns: int = Field(default=50, ge=0)
    """Also consolidate after this many turns since the last pass; 0: only on schedule."""
    near_limit: float = Field(default=0.9, gt=0, le=1)
    """...and when an edit leaves a block this full (share of its limit)."""
    max_steps: int = Field(default=8, ge=1, le=50)
    max_tokens: int = Field(default=30_000, ge=1000)
    """Budget of one pass (prompt + completion tokens over its steps)."""
    max_messages: int = Field(default=200, ge=10)
    """Most recent messages since the last pass shown to the model."""

    @field_validator("schedule")
    @classmethod
    def _crontab(cls, value: str) -> str:
        from zoneinfo import ZoneInfo

        from botmem.crontab import cron_trigger

        if value:
            cron_trigger(value, ZoneInfo("UTC"))  # its ValueError names the bad field
        return value


class SummarizationSettings(_Section):
    idle_minutes: float = Field(default=30.0, ge=0)
    """Summarize an agent nobody has talked to for this long..."""
    above: float = Field(default=0.6, gt=0, le=1)
    """...when its context fills more than this share of the window (0 minutes: off)."""
    check_every_minutes: float = Field(default=5.0, gt=0)


class LimitSettings(_Section):
    messages_per_minute: int = Field(default=20, ge=0)
    """User messages per agent in any 60 seconds (sliding, in memory); 0: off."""
    tokens_per_hour: int = Field(default=200_000, ge=0)
    """LLM tokens (prompt + completion) per agent in the last hour; 0: off."""
    tokens_per_day: int = Field(default=1_000_000, ge=0)
    """...and in the last 24 hours; 0: off."""


class RuntimeSettings(_Section):
    max_concurrent_turns: int = Field(default=16, ge=1, le=10_000)
    log_level: str = Field(default="INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$")
    shutdown_grace: float = Field(default=30.0, ge=0)
    """Seconds `botmem run` lets running turns finish on Ctrl-C/SIGTERM (the rest are replayed)."""


class WorkerSettings(_Section):
    lease_seconds: float = Field(default=30.0, ge=1, le=3600)
    """How long a process's hold on an agent (or on the scheduler) lasts unrenewed; renewed
    every third of it. A worker that dies mid-turn has the turn run elsewhere this late."""
    poll_interval: float = Field(default=0.2, gt=0, le=60)
    """Seconds between looks at the inbox for work stored by other processes."""


class ServerSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8283, ge=0, le=65535)
    api_key_env: str = ""
    """The env var holding the API key every request must send as ``Authorization: Bearer``.
    Empty: no key, and `botmem serve` refuses to listen beyond loopback."""
    strict_tools: bool = False
    """Refuse (422) agents asking for tools this server does not have, instead of a warning."""
    max_body_bytes: int = Field(default=10_000_000, ge=1024)
    """Largest request body accepted (agent file imports are the big ones)."""


class Settings(_Section):
    telegram: TelegramSettings | None = None
    slack: SlackSettings | None = None
    discord: DiscordSettings | None = None
    llm: LLMSettings = Field(default_factory=LLMSettings)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    agent: AgentSettings = Field(default_factory=AgentSettings)
    context: ContextSettings = Field(default_factory=ContextSettings)
    embeddings: EmbeddingSettings = Field(default_factory=EmbeddingSettings)
    retrieval: RetrievalSettings = Field(default_factory=RetrievalSettings)
    runtime: RuntimeSettings = Field(default_factory=RuntimeSettings)
    checkins: CheckinSettings = Field(default_factory=CheckinSettings)
    consolidation: ConsolidationSettings = Field(default_factory=ConsolidationSettings)
    summarization: SummarizationSettings = Field(default_factory=SummarizationSettings)
    limits: LimitSettings = Field(default_factory=LimitSettings)
    workers: WorkerSettings = Field(default_factory=WorkerSettings)
    server: ServerSettings = Field(default_factory=ServerSettings)
    source: str = Field(default="<defaults>", exclude=True)

    def platforms(self) -> dict[str, PlatformSettings]:
        """The chat platforms configured (and enabled) in the file, by name."""
        found = {"telegram": self.telegram, "slack": self.slack, "discord": self.discord}
        return {name: cfg for name, cfg in found.items() if cfg is not None and cfg.enabled}


def load_settings(path: str | Path | None, environ: Mapping[str, str] | None = None) -> Settings:
    """Read the TOML file (if any), overlay BOTMEM_SECTION__KEY variables, validate."""
    environ = os.environ if environ is None else environ
    data: dict[str, Any] = {}
    source = "<defaults>"
    if path is not None:
        source = str(path)
        data = _read_toml(Path(path))
    env_keys = _overlay_env(data, environ)
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        raise _config_error(exc, source, env_keys) from None
    settings.source = source
    return settings


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(
            "config file not found (copy config.example.toml to start)", source=str(path)
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", source=str(path)) from None


def _overlay_env(data: dict[str, Any], environ: Mapping[str, str]) -> dict[str, str]:
    """Apply BOTMEM_LLM__MODEL=... style variables; returns dotted key -> variable name."""
    applied: dict[str, str] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        path = [part.lower() for part in name[len(ENV_PREFIX) :].split("__")]
        target = data
        for part in path[:-1]:
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                raise ConfigError(f"{name} conflicts with a non-table value", key=part)
        target[path[-1]] = _env_value(raw)
        applied[".".join(path)] = name
    return applied


def _env_value(raw: str) -> Any:
    """JSON lists/tables/numbers pass through; anything else stays a string."""
    if raw[:1] in "[{":
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            return raw
    return raw


def _config_error(exc: ValidationError, source: str, env_keys: dict[str, str]) -> ConfigError:
    first = exc.errors()[0]
    key = ".".join(str(part) for part in first["loc"])
    message = first["msg"]
    if first["type"] == "extra_forbidden":
        message = "unknown setting (check the spelling against config.example.toml)"
    where = env_keys.get(key)
    if where:
        return ConfigError(f"{message} (from environment variable {where})", key=key, source=source)
    more = len(exc.errors()) - 1
    suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    return ConfigError(message + suffix, key=key, source=source)


def require_llm(settings: Settings, environ: Mapping[str, str] | None = None) -> str | None:
    """Check the LLM can be reached; returns the API key. Errors say exactly what to set."""
    environ = os.environ if environ is None else environ
    llm = settings.llm
    if not llm.model:
        raise ConfigError(
            'no LLM model configured: set model = "openai/gpt-4o-mini" (any litellm model) '
            "under [llm], or the environment variable BOTMEM_LLM__MODEL",
            key="llm.model",
            source=settings.source,
        )
    env_name = llm.key_env_name()
    if env_name is None:
        return None
    key = environ.get(env_name, "")
    if not key:
        raise ConfigError(
            f"the API key for {llm.model} is missing: set the environment variable {env_name}"
            + ("" if llm.api_key_env else " (or name another one with api_key_env under [llm])"),
            key="llm.api_key_env",
            source=settings.source,
        )
    return key
