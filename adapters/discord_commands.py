"""The /memory slash command group: each subcommand becomes one line of the core's grammar."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Literal

import discord
from discord import app_commands

from adapters.discord_translate import command_text, schedule_command_text

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

    _schedule_commands(group, run)
    return group


def _schedule_commands(group: app_commands.Group, run: RunCommand) -> None:
    """Check-ins, the person's timezone, and (admins) consolidation history and undo."""

    @group.command(name="checkins", description="The check-ins the bot planned with you")
    @app_commands.describe(
        action="list yours, cancel one, or (admins) list all", checkin="The check-in to cancel"
    )
    async def checkins(
        interaction: discord.Interaction,
        action: Literal["list", "cancel", "all"] = "list",
        checkin: int | None = None,
    ) -> None:
        text = schedule_command_text("checkins", action=action, checkin_id=checkin)
        await run(interaction, text)

    @group.command(name="timezone", description="Your timezone, for check-ins and dates")
    @app_commands.describe(zone="Set it, e.g. Europe/Paris")
    async def timezone(interaction: discord.Interaction, zone: str | None = None) -> None:
        await run(interaction, command_text("timezone", text=zone))

    @group.command(name="history", description="Admins only: memory consolidations")
    @app_commands.describe(user="Whose (default: yours)")
    async def history(interaction: discord.Interaction, user: discord.User | None = None) -> None:
        await run(interaction, schedule_command_text("history", user_id=_user_id(user)))

    @group.command(name="undo", description="Admins only: undo a memory consolidation")
    @app_commands.rename(run_id="run")
    @app_commands.describe(run_id="The consolidation (see /memory history)", user="Whose")
    async def undo(
        interaction: discord.Interaction, run_id: str, user: discord.User | None = None
    ) -> None:
        text = schedule_command_text("undo", run_id=run_id, user_id=_user_id(user))
        await run(interaction, text)


def _user_id(user: discord.User | discord.Member | None) -> int | None:
    return user.id if user is not None else None
