import pytest
from pydantic import ValidationError

from wayline.platform import contracts


def test_events_round_trip_and_bad_payloads_are_refused():
    ev = contracts.ProfileChangedV1(sandboxId="s", profileId="p", identity={"namespace": "Email", "id": "a@b.c"},
                                    changes=["fragment"], atMs=1)
    back = contracts.parse(contracts.PROFILE_CHANGED, ev.model_dump())
    assert back == ev
    with pytest.raises(ValidationError):
        contracts.parse(contracts.PROFILE_CHANGED, {**ev.model_dump(), "changes": ["explode"]})
    with pytest.raises(ValueError, match="unknown event"):
        contracts.parse(contracts.PROFILE_CHANGED, {**ev.model_dump(), "schemaVersion": 9})
    schemas = contracts.json_schemas()
    assert set(schemas) == {"platform.profile.changed/v1", "platform.segment.qualification/v1"}
    assert "realized" in str(schemas["platform.segment.qualification/v1"])
