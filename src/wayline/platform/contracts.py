"""The platform's published events: versioned schemas other products may rely on.

They travel on the event backbone (kernel/outbox.py), keyed by (sandbox, namespace, identity value)
so that everything about one person is applied in order. A change to a contract is additive within
a `schemaVersion`; anything else is a new version, and consumers accept every version they know.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

PROFILE_STREAM = "platform.profiles"
SEGMENT_STREAM = "platform.segments"

PROFILE_CHANGED = "platform.profile.changed"
SEGMENT_QUALIFICATION = "platform.segment.qualification"


class Identity(BaseModel):
    model_config = ConfigDict(extra="forbid")
    namespace: str = Field(..., description="namespace code, e.g. Email")
    id: str


class ProfileChangedV1(BaseModel):
    """A merged profile changed: a new fragment, a new or removed identity link, a deletion, an overflow."""

    model_config = ConfigDict(extra="forbid")
    schemaVersion: Literal[1] = 1
    type: Literal["platform.profile.changed"] = PROFILE_CHANGED
    sandboxId: str
    profileId: str = Field(..., description="stable id of the merged profile (its identity graph)")
    identity: Identity = Field(..., description="the identity the ordering key is built from")
    changes: list[Literal["fragment", "event", "link", "unlink", "delete", "overflow"]] = Field(..., min_length=1)
    datasetId: str | None = None
    recordId: str | None = None
    fields: list[str] = Field(default_factory=list, description="attribute paths that changed, when known")
    previousProfileIds: list[str] = Field(default_factory=list,
                                          description="profiles that no longer exist because they became part of "
                                                      "(or were split from) this one")
    atMs: int


def profile_changed(*, sandbox_id: str, profile_id: str, ns: str, id: str, changes: list[str], at_ms: int,
                    dataset_id: str | None = None, record_id: str | None = None, fields: list[str] | None = None,
                    previous: list[str] | None = None) -> dict[str, Any]:
    """A ProfileChangedV1 as the JSON it is published as, built without the model: ingestion emits
    one per touched profile, and validating and dumping a model costs more than the rest of the event.
    Tests hold it equal to `ProfileChangedV1(...).model_dump(mode="json")` and valid against it."""
    return {"schemaVersion": 1, "type": PROFILE_CHANGED, "sandboxId": sandbox_id, "profileId": profile_id,
            "identity": {"namespace": ns, "id": id}, "changes": changes, "datasetId": dataset_id,
            "recordId": record_id, "fields": fields or [], "previousProfileIds": previous or [], "atMs": at_ms}


class SegmentQualificationV1(BaseModel):
    """A profile entered (realized) or left (exited) a segment."""

    model_config = ConfigDict(extra="forbid")
    schemaVersion: Literal[1] = 1
    type: Literal["platform.segment.qualification"] = SEGMENT_QUALIFICATION
    sandboxId: str
    segmentId: str
    profileId: str
    identity: Identity
    status: Literal["realized", "exited"]
    lastQualificationTime: str = Field(..., description="ISO 8601")


def segment_qualification(*, sandbox_id: str, segment_id: str, profile_id: str, ns: str, id: str, status: str,
                          at: str) -> dict[str, Any]:
    """A SegmentQualificationV1 as the JSON it is published as, built without the model (`at`: the ISO
    8601 qualification time): a profile change can move it in and out of many continuous segments.
    Tests hold it equal to the model's JSON and valid against it."""
    return {"schemaVersion": 1, "type": SEGMENT_QUALIFICATION, "sandboxId": sandbox_id, "segmentId": segment_id,
            "profileId": profile_id, "identity": {"namespace": ns, "id": id}, "status": status,
            "lastQualificationTime": at}


EVENTS: dict[tuple[str, int], type[BaseModel]] = {
    (PROFILE_CHANGED, 1): ProfileChangedV1,
    (SEGMENT_QUALIFICATION, 1): SegmentQualificationV1,
}


def parse(type_: str, payload: dict[str, Any]) -> BaseModel:
    """The typed event for an outbox message's type and payload; raises ValueError for unknown ones."""
    version = payload.get("schemaVersion", 1)
    model = EVENTS.get((type_, version))
    if model is None:
        raise ValueError(f"unknown event {type_!r} version {version!r}")
    return model.model_validate(payload)


def json_schemas() -> dict[str, Any]:
    """Every contract as JSON Schema, for docs and for other languages."""
    return {f"{name}/v{version}": model.model_json_schema() for (name, version), model in EVENTS.items()}
