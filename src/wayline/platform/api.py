"""The platform's HTTP API: the routers of each concept; handlers parse, call the service, shape."""

from __future__ import annotations

from fastapi import APIRouter


def routers() -> list[APIRouter]:
    from wayline.platform import batch_api, catalog_api, collection_api
    from wayline.platform.schemas import api as schemas_api

    return [collection_api.router, catalog_api.router, batch_api.router, schemas_api.router]
