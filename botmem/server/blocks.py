"""/v1 routes: blocks (being written)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["blocks"])
