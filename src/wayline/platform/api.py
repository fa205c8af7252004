"""The platform's HTTP API: the routers of each concept; handlers parse, call the service, shape."""

from __future__ import annotations

from fastapi import APIRouter


def routers() -> list[APIRouter]:
    from wayline.platform import batch_api, catalog_api, collection_api, profile_api, segment_api
    from wayline.platform.governance import api as governance_api
    from wayline.platform.schemas import api as schemas_api

    return [collection_api.router, catalog_api.router, batch_api.router, schemas_api.router, profile_api.router,
            segment_api.router, governance_api.router]


def fast_routes() -> dict:
    """The intake routes the kernel's FastPath may serve directly (same handlers as the routers)."""
    from wayline.platform import collection_api

    return {"/collection/batch/{inlet_id}": collection_api.collect_batch,
            "/collection/{inlet_id}": collection_api.collect}
