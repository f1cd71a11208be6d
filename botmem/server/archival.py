"""/v1 routes: archival (being written)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["archival"])
