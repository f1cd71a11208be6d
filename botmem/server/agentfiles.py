"""/v1 routes: agentfiles (being written)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["agentfiles"])
