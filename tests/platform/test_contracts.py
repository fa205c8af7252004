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


def test_the_fast_profile_changed_builder_publishes_exactly_the_models_json():
    from hypothesis import given
    from hypothesis import strategies as st

    text = st.text(max_size=12)
    opt = st.none() | text

    @given(sandbox=text, profile=text, ns=text, value=text, at=st.integers(0, 2**53),
           changes=st.lists(st.sampled_from(["fragment", "event", "link", "unlink", "delete", "overflow"]),
                            min_size=1, max_size=6),
           dataset=opt, record=opt, fields=st.lists(text, max_size=4) | st.none(),
           previous=st.lists(text, max_size=3) | st.none())
    def check(sandbox, profile, ns, value, at, changes, dataset, record, fields, previous):
        built = contracts.profile_changed(sandbox_id=sandbox, profile_id=profile, ns=ns, id=value, changes=changes,
                                          at_ms=at, dataset_id=dataset, record_id=record, fields=fields,
                                          previous=previous)
        model = contracts.ProfileChangedV1(
            sandboxId=sandbox, profileId=profile, identity={"namespace": ns, "id": value}, changes=changes,
            datasetId=dataset, recordId=record, fields=fields or [], previousProfileIds=previous or [], atMs=at)
        assert built == model.model_dump(mode="json")
        assert list(built) == list(model.model_dump(mode="json"))  # same key order, same bytes published
        assert contracts.parse(contracts.PROFILE_CHANGED, built) == model

    check()


def test_the_fast_segment_qualification_builder_publishes_exactly_the_models_json():
    from hypothesis import given
    from hypothesis import strategies as st

    text = st.text(max_size=12)

    @given(sandbox=text, segment=text, profile=text, ns=text, value=text,
           status=st.sampled_from(["realized", "exited"]), at=text)
    def check(sandbox, segment, profile, ns, value, status, at):
        built = contracts.segment_qualification(sandbox_id=sandbox, segment_id=segment, profile_id=profile, ns=ns,
                                                id=value, status=status, at=at)
        model = contracts.SegmentQualificationV1(sandboxId=sandbox, segmentId=segment, profileId=profile,
                                                 identity={"namespace": ns, "id": value}, status=status,
                                                 lastQualificationTime=at)
        assert built == model.model_dump(mode="json")
        assert list(built) == list(model.model_dump(mode="json"))  # same key order, same bytes published
        assert contracts.parse(contracts.SEGMENT_QUALIFICATION, built) == model

    check()
