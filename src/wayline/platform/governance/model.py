"""The vocabulary of governance: labels, marketing actions and policies as plain values."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

CONTRACT, IDENTITY, SENSITIVE, CUSTOM = "Contract", "Identity", "Sensitive", "Custom"
ACTIONS_PATH = "/dulepolicy/marketingActions"
STATUSES = ("DRAFT", "ENABLED", "DISABLED")


@dataclass(frozen=True)
class Label:
    name: str
    friendly_name: str
    description: str
    category: str
    core: bool = True
    version: int = 1
    created_ms: int = 0
    updated_ms: int = 0

    def to_api(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "friendlyName": self.friendly_name,
                               "description": self.description, "category": self.category}
        if not self.core:
            out.update(version=self.version, created=self.created_ms, updated=self.updated_ms)
        return out


@dataclass(frozen=True)
class Action:
    name: str
    description: str
    core: bool = True
    version: int = 1
    created_ms: int = 0
    updated_ms: int = 0

    @property
    def ref(self) -> str:
        return action_ref(self.name, core=self.core)

    def to_api(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "description": self.description, "ref": self.ref}
        if not self.core:
            out.update(version=self.version, created=self.created_ms, updated=self.updated_ms)
        return out


def action_ref(name: str, *, core: bool) -> str:
    """The canonical reference of a marketing action, as policies store it."""
    return f"{ACTIONS_PATH}/{'core' if core else 'custom'}/{name}"




@dataclass(frozen=True)
class Policy:
    """A policy: when `status` is ENABLED, data whose labels make `deny` true may not be used for any
    of the marketing actions of `action_refs`."""

    id: str
    name: str
    description: str
    status: str
    action_refs: tuple[str, ...]
    deny: dict[str, Any] = field(compare=False)
    core: bool = False
    version: int = 1
    created_ms: int = 0
    updated_ms: int = 0

    @property
    def path(self) -> str:
        return f"/dulepolicy/policies/{'core' if self.core else 'custom'}/{self.id}"

    def to_api(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "description": self.description, "status": self.status,
                "marketingActionRefs": list(self.action_refs), "deny": self.deny, "core": self.core,
                "version": self.version, "created": self.created_ms, "updated": self.updated_ms,
                "_links": {"self": {"href": self.path}}}

    def summary(self) -> dict[str, Any]:
        """What an evaluation names of a violated policy."""
        return {"id": self.id, "name": self.name, "description": self.description, "status": self.status,
                "core": self.core, "marketingActionRefs": list(self.action_refs), "deny": self.deny,
                "_links": {"self": {"href": self.path}}}


@dataclass(frozen=True)
class EntityRef:
    """An entity named in an evaluation: a dataset (optionally some of its fields) or one field of a
    dataset or schema; other types (segments) are resolved by the caller's plugged-in resolver."""

    entity_type: str
    entity_id: str
    paths: tuple[Any, ...] = ()
