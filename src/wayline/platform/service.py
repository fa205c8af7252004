"""The platform's facade: what the other products and the platform's own API call.

Journeys use only this module and `wayline.platform.contracts`, never the platform's tables.
"""

from __future__ import annotations

from wayline.config import Settings
from wayline.kernel.store import Store


class PlatformService:
    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings
