"""The /memory slash command group: each subcommand becomes one line of the core's grammar."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Literal

import discord
from discord import app_commands

from adapters.discord_translate import command_text

RunCommand = Callable[[discord.Interaction, str], Awaitable[None]]
"""Answers an interaction with the command text (defers first: Discord allows 3 s)."""


def memory_group(run: RunCommand) -> app_commands.Group:
    group = app_commands.Group(name="memory", description="What the bot remembers about you")

    @group.command(name="help", description="How the memory commands work")
    async def help_command(interaction: discord.Interaction) -> None:
        await run(interaction, command_text("help"))

    @group.command(name="show", description="Show what the bot remembers about you")
    @app_commands.describe(user="Admins only: someone else's memory")
    async def show(interaction: discord.Interaction, user: discord.User | None = None) -> None:
        await run(interaction, command_text("show", user_id=_user_id(user)))

    @group.command(name="export", description="Your memory as a JSON file")
    @app_commands.describe(user="Admins only: someone else's memory")
    async def export(interaction: discord.Interaction, user: discord.User | None = None) -> None:
        await run(interaction, command_text("export", user_id=_user_id(user)))

    @group.command(name="wipe", description="Make the bot forget everything about you")
    @app_commands.describe(
        confirm="Yes, really: forget it (within 5 minutes of asking)",
        user="Admins only: someone else's memory",
    )
    async def wipe(
        interaction: discord.Interaction, confirm: bool = False, user: discord.User | None = None
    ) -> None:
        await run(interaction, command_text("wipe", confirm=confirm, user_id=_user_id(user)))

    @group.command(name="agents", description="Admins only: list the bot's agents")
    @app_commands.describe(text="Only agents whose key contains this")
    async def agents(interaction: discord.Interaction, text: str | None = None) -> None:
        await run(interaction, command_text("agents", text=text))

    @group.command(name="team", description="Admins only: the server's shared memory block")
    @app_commands.describe(action="show it, replace it (set) or add a line (append)", text="Text")
    async def team(
        interaction: discord.Interaction,
        action: Literal["show", "set", "append"] = "show",
        text: str | None = None,
    ) -> None:
        await run(interaction, command_text("team", action=action, text=text))

    return group


def _user_id(user: discord.User | discord.Member | None) -> int | None:
    return user.id if user is not None else None
