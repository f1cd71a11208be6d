"""Settings: file + environment, errors that name the key and the file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from botmem.config import (
    AgentSettings,
    BlockSettings,
    CheckinSettings,
    ConsolidationSettings,
    ContextSettings,
    LimitSettings,
    LLMSettings,
    RuntimeSettings,
    ServerSettings,
    Settings,
    StorageSettings,
    SummarizationSettings,
    WorkerSettings,
    load_settings,
    require_llm,
)
from botmem.errors import ConfigError
from botmem.platform_config import DiscordSettings, SlackSettings, TelegramSettings

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "config.example.toml"


def test_the_example_documents_every_setting_and_loads() -> None:
    text = EXAMPLE.read_text()
    sections = {
        "llm": LLMSettings,
        "storage": StorageSettings,
        "agent": AgentSettings,
        "context": ContextSettings,
        "runtime": RuntimeSettings,
        "checkins": CheckinSettings,
        "consolidation": ConsolidationSettings,
        "summarization": SummarizationSettings,
        "limits": LimitSettings,
        "workers": WorkerSettings,
        "server": ServerSettings,
    }
    for name, model in sections.items():
        assert f"[{name}]" in text
        for field in model.model_fields:
            if field != "blocks":
                assert f"\n{field} =" in text or f"\n# {field} =" in text, f"{name}.{field}"
    for field in BlockSettings.model_fields:
        assert f"# {field} =" in text, f"agent.blocks.{field}"
    for model in (TelegramSettings, SlackSettings, DiscordSettings):
        assert f"# [{model.name}]" in text
        table = text.split(f"# [{model.name}]", 1)[1].split("\n\n", 1)[0]
        for field in model.model_fields:
            assert f"\n# {field} =" in table, f"{model.name}.{field}"
    settings = load_settings(EXAMPLE, {})
    assert settings.llm.model == "openai/gpt-4o-mini"
    assert settings.context.trigger == 0.75 and settings.context.target == 0.5


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[llm]\nmodel = "openai/a"\nmax_steps = 3\n')
    settings = load_settings(
        path,
        {
            "BOTMEM_LLM__MODEL": "ollama/llama3.1",
            "BOTMEM_LLM__FALLBACKS": '["x", "y"]',
            "BOTMEM_STORAGE__DATA_DIR": "/tmp/d",
            "UNRELATED": "1",
        },
    )
    assert settings.llm.model == "ollama/llama3.1"
    assert settings.llm.max_steps == 3 and settings.llm.fallbacks == ["x", "y"]
    assert settings.storage.resolved_database_url() == "sqlite:////tmp/d/botmem.db"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('[llm]\nmax_steps = "lots"\n', "llm.max_steps: Input should be a valid integer"),
        ("[llm]\nmodle = 'x'\n", "llm.modle: unknown setting"),
        ("[agent]\ntimezone = 'Mars/Base'\n", "agent.timezone: Value error, unknown timezone"),
        ("[[agent.blocks]]\nlabel = 'Bad Label'\n", "agent.blocks.0.label"),
        ("[context]\ntrigger = 2\n", "context.trigger"),
        (
            "[embeddings]\nprovider = 'litellm'\n",
            'embeddings: Value error, provider "litellm" needs',
        ),
        ("[llm\n", "not valid TOML"),
    ],
)
def test_bad_settings_name_the_key_and_the_file(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(body)
    with pytest.raises(ConfigError) as info:
        load_settings(path, {})
    assert str(path) in str(info.value)
    assert message in str(info.value)


def test_bad_environment_value_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="BOTMEM_RUNTIME__MAX_CONCURRENT_TURNS"):
        load_settings(None, {"BOTMEM_RUNTIME__MAX_CONCURRENT_TURNS": "-1"})


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(tmp_path / "nope.toml", {})


def test_llm_requirements_say_exactly_what_to_set() -> None:
    with pytest.raises(ConfigError, match="BOTMEM_LLM__MODEL"):
        require_llm(Settings(), {})
    settings = Settings.model_validate({"llm": {"model": "openai/gpt-4o-mini"}})
    with pytest.raises(ConfigError, match="set the environment variable OPENAI_API_KEY"):
        require_llm(settings, {})
    assert require_llm(settings, {"OPENAI_API_KEY": "k"}) == "k"
    local = Settings.model_validate({"llm": {"model": "openai/m", "api_base": "http://x/v1"}})
    assert require_llm(local, {}) is None
    named = Settings.model_validate({"llm": {"model": "anthropic/c", "api_key_env": "MY_KEY"}})
    with pytest.raises(ConfigError, match="MY_KEY"):
        require_llm(named, {})


def _cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "botmem.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=60,
        input="",
    )


def test_cli_errors_are_one_clear_line_without_traceback(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": str(ROOT)}
    result = _cli("chat", "--user", "a", env=env, cwd=tmp_path)
    assert result.returncode == 2 and result.stdout == ""
    assert "no LLM model configured" in result.stderr and "Traceback" not in result.stderr
    (tmp_path / "config.toml").write_text('[llm]\nmodel = "openai/gpt-4o-mini"\n')
    result = _cli("chat", "--user", "a", env=env, cwd=tmp_path)
    assert result.returncode == 2 and "OPENAI_API_KEY" in result.stderr
    (tmp_path / "config.toml").write_text("[llm]\nmax_steps = 0\n")
    result = _cli("chat", "--user", "a", env=env, cwd=tmp_path)
    assert "config.toml] llm.max_steps" in result.stderr and "Traceback" not in result.stderr
