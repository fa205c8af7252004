"""The platform's HTTP API: routers only; each handler parses, calls the service, shapes the answer."""

from __future__ import annotations

from fastapi import APIRouter


def routers() -> list[APIRouter]:
    return []
