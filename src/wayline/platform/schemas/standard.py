"""The standard pieces: behaviors, classes, field groups and data types every sandbox sees.

They live in code, not in the database, under the reference's own `$id`s, so payloads written for
the reference (`"$ref": "https://ns.adobe.com/xdm/context/profile-person-details"`) work unchanged.
Field names and enumerations follow DOMAIN.md §3. Each piece is written in the same XDM-style JSON
Schema a tenant would POST (definitions + allOf + $ref); the composer treats both alike.
"""

from __future__ import annotations

from typing import Any

from wayline.platform.schemas.model import (
    EVENT_CLASS,
    PROFILE_CLASS,
    RECORD_BEHAVIOR,
    TIME_SERIES_BEHAVIOR,
    Resource,
    derive_alt_id,
)

LOOKUP_CLASS = "https://ns.wayline.dev/xdm/classes/lookup-record"

# -- data type and field group ids ----------------------------------------------------------------
PERSON_NAME = "https://ns.adobe.com/xdm/context/person-name"
ADDRESS = "https://ns.adobe.com/xdm/common/address"
EMAIL_ADDRESS = "https://ns.adobe.com/xdm/context/emailaddress"
PHONE_NUMBER = "https://ns.adobe.com/xdm/context/phonenumber"
IDENTITY_ITEM = "https://ns.adobe.com/xdm/context/identityitem"
IDENTITY = "https://ns.adobe.com/xdm/context/identity"
NAMESPACE = "https://ns.adobe.com/xdm/context/namespace"
SEGMENT_MEMBERSHIP = "https://ns.adobe.com/xdm/context/segmentmembership"
EXT_AUDIT = "https://ns.adobe.com/xdm/common/external-source-system-audit"
MEASURE = "https://ns.adobe.com/xdm/data/measure"
CONSENT_FIELD = "https://ns.adobe.com/xdm/datatypes/consent-field"
MARKETING_FIELD = "https://ns.adobe.com/xdm/datatypes/marketing-field"

FG_IDENTITY_MAP = "https://ns.adobe.com/xdm/context/identitymap"
FG_PERSON = "https://ns.adobe.com/xdm/context/profile-person-details"
FG_PERSONAL_CONTACT = "https://ns.adobe.com/xdm/context/profile-personal-details"
FG_CONSENTS = "https://ns.adobe.com/xdm/mixins/profile-consents"
FG_PUSH = "https://ns.adobe.com/xdm/context/profile-push-notification-details"
FG_SEGMENTS = "https://ns.adobe.com/xdm/context/profile-segmentation"
FG_TEST_PROFILE = "https://ns.adobe.com/xdm/context/profile-test-profile"
FG_EXT_AUDIT = "https://ns.adobe.com/xdm/common/external-source-system-audit-details"
FG_COMMERCE = "https://ns.adobe.com/xdm/context/experienceevent-commerce"
FG_WEB = "https://ns.adobe.com/xdm/context/experienceevent-web"
FG_ORCHESTRATION = "https://ns.adobe.com/experience/campaign/orchestration/eventid"


# -- small builders (keep the definitions readable) ---------------------------------------------------

def _s(title: str, **kw: Any) -> dict[str, Any]:
    return {"title": title, "type": "string", **kw}


def _b(title: str, **kw: Any) -> dict[str, Any]:
    return {"title": title, "type": "boolean", **kw}


def _i(title: str, **kw: Any) -> dict[str, Any]:
    return {"title": title, "type": "integer", **kw}


def _n(title: str, **kw: Any) -> dict[str, Any]:
    return {"title": title, "type": "number", **kw}


def _o(title: str, props: dict[str, Any], **kw: Any) -> dict[str, Any]:
    return {"title": title, "type": "object", "properties": props, **kw}


def _a(title: str, items: dict[str, Any], **kw: Any) -> dict[str, Any]:
    return {"title": title, "type": "array", "items": items, **kw}


def _r(uri: str, title: str | None = None, **kw: Any) -> dict[str, Any]:
    return {"$ref": uri, **({"title": title} if title else {}), **kw}


def _map(title: str, values: dict[str, Any]) -> dict[str, Any]:
    return {"title": title, "type": "object", "meta:xdmType": "map", "additionalProperties": values}


def _dt(title: str, props: dict[str, Any], description: str = "", required: tuple[str, ...] = ()) -> dict[str, Any]:
    body: dict[str, Any] = {"title": title, "description": description, "type": "object", "properties": props}
    if required:
        body["required"] = list(required)
    return body


def _fg(title: str, extends: list[str], props: dict[str, Any], description: str = "") -> dict[str, Any]:
    name = title.lower().replace(" ", "-")
    return {"title": title, "description": description, "type": "object", "meta:intendedToExtend": extends,
            "definitions": {name: {"properties": props}}, "allOf": [{"$ref": f"#/definitions/{name}"}]}


def _cls(title: str, behavior: str, props: dict[str, Any], description: str = "",
         required: tuple[str, ...] = ()) -> dict[str, Any]:
    own: dict[str, Any] = {"properties": props}
    if required:
        own["required"] = list(required)
    return {"title": title, "description": description, "type": "object",
            "definitions": {"class": own}, "allOf": [{"$ref": behavior}, {"$ref": "#/definitions/class"}]}


_DATE_TIME = {"format": "date-time"}
_YN = {"enum": ["y", "n"]}

BEHAVIOR_DEFS: dict[str, dict[str, Any]] = {
    RECORD_BEHAVIOR: _dt("Record Schema", {"_id": _s("Identifier", description="the record's id")},
                         "Data about an entity at a point in time: profiles, products, stores.", ("_id",)),
    TIME_SERIES_BEHAVIOR: _dt("Time-series Schema", {
        "_id": _s("Identifier", description="the event's id (not the person's)"),
        "timestamp": _s("Timestamp", description="when the event happened (ISO 8601)", **_DATE_TIME),
        "eventType": _s("Event Type", description="e.g. commerce.purchases, web.webpagedetails.pageViews"),
        "producedBy": _s("Produced By", description="self, system, salesRef or customerRep"),
    }, "Events: something that happened at a point in time.", ("_id", "timestamp")),
}

DATATYPE_DEFS: dict[str, dict[str, Any]] = {
    PERSON_NAME: _dt("Person name", {
        "firstName": _s("First name"), "middleName": _s("Middle name"), "lastName": _s("Last name"),
        "fullName": _s("Full name"), "courtesyTitle": _s("Courtesy title"), "suffix": _s("Suffix"),
    }, "A person's full name."),
    ADDRESS: _dt("Postal address", {
        "primary": _b("Primary"), "label": _s("Label"), "street1": _s("Street 1"), "street2": _s("Street 2"),
        "street3": _s("Street 3"), "street4": _s("Street 4"), "city": _s("City"),
        "postalCode": _s("Postal code"), "region": _s("Region"), "stateProvince": _s("State or province"),
        "country": _s("Country"), "countryCode": _s("Country code", pattern="^[A-Za-z]{2}$"),
        "status": _s("Status"),
    }, "A postal address."),
    EMAIL_ADDRESS: _dt("Email address", {
        "address": _s("Address", format="email"), "primary": _b("Primary"), "label": _s("Label"),
        "type": _s("Type"), "status": _s("Status"),
    }, "An email address."),
    PHONE_NUMBER: _dt("Phone number", {
        "number": _s("Number"), "primary": _b("Primary"), "label": _s("Label"), "status": _s("Status"),
    }, "A phone number."),
    IDENTITY_ITEM: _dt("Identity item", {
        "id": _s("Identifier"),
        "authenticatedState": _s("Authenticated state", enum=["ambiguous", "authenticated", "loggedOut"],
                                 default="ambiguous"),
        "primary": _b("Primary", default=False),
    }, "One identity of a namespace in an identityMap.", ("id",)),
    NAMESPACE: _dt("Namespace", {"code": _s("Code", description="a namespace code, e.g. Email")},
                   "An identity namespace."),
    IDENTITY: _dt("Identity", {"id": _s("Identifier"), "namespace": _r(NAMESPACE, "Namespace")},
                  "An identity value with its namespace."),
    SEGMENT_MEMBERSHIP: _dt("Segment membership", {
        "status": _s("Status", enum=["realized", "existing", "exited"], default="realized"),
        "lastQualificationTime": _s("Last qualification time", **_DATE_TIME),
        "validUntil": _s("Valid until", **_DATE_TIME),
    }, "A profile's membership of one segment."),
    EXT_AUDIT: _dt("External source system audit", {
        "createdBy": _s("Created by"), "createdDate": _s("Created date", **_DATE_TIME),
        "lastUpdatedBy": _s("Last updated by"), "lastUpdatedDate": _s("Last updated date", **_DATE_TIME),
        "lastActivityDate": _s("Last activity date", **_DATE_TIME),
        "lastReferencedDate": _s("Last referenced date", **_DATE_TIME),
        "lastViewedDate": _s("Last viewed date", **_DATE_TIME),
    }, "When and by whom an external system created or updated the record."),
    MEASURE: _dt("Measure", {"id": _s("Identifier"), "value": _n("Value")}, "A quantified metric."),
    CONSENT_FIELD: _dt("Consent field", {"val": _s("Value", **_YN)}, "A yes/no consent."),
    MARKETING_FIELD: _dt("Marketing field", {
        "val": _s("Value", **_YN), "reason": _s("Reason"), "time": _s("Time", **_DATE_TIME),
    }, "Consent to marketing on one channel."),
}

_IDENTITY_MAP = {"identityMap": _map("Identity map", _a("Identities of one namespace", _r(IDENTITY_ITEM)))}

CLASS_DEFS: dict[str, dict[str, Any]] = {
    PROFILE_CLASS: _cls("XDM Individual Profile", RECORD_BEHAVIOR, {
        "personID": _s("Person ID"), "createdByBatchID": _s("Created by batch"),
        "modifiedByBatchID": _s("Modified by batch"),
    }, "The attributes and interests of one person."),
    EVENT_CLASS: _cls("XDM ExperienceEvent", TIME_SERIES_BEHAVIOR, dict(_IDENTITY_MAP),
                      "Something that happened, to or by a person, at a point in time."),
    LOOKUP_CLASS: _cls("Lookup Record", RECORD_BEHAVIOR, {},
                       "A generic record class for lookup entities (products, stores) that other schemas "
                       "join through a one-to-one relationship descriptor. Put the entity's fields under "
                       "the tenant namespace."),
}

FIELDGROUP_DEFS: dict[str, dict[str, Any]] = {
    FG_IDENTITY_MAP: _fg("IdentityMap", [PROFILE_CLASS, EVENT_CLASS], dict(_IDENTITY_MAP),
                         "Identities of the record by namespace code."),
    FG_PERSON: _fg("Demographic Details", [PROFILE_CLASS], {"person": _o("Person", {
        "name": _r(PERSON_NAME, "Full name"),
        "birthDate": _s("Birth date", format="date"),
        "birthYear": _i("Birth year", minimum=1, maximum=32767),
        "birthDayAndMonth": _s("Birth day and month", pattern="^[0-9]{2}-[0-9]{2}$"),
        "gender": _s("Gender", enum=["male", "female", "not_specified", "non_specific"]),
    })}, "Name, birth date and gender of a person."),
    FG_PERSONAL_CONTACT: _fg("Personal Contact Details", [PROFILE_CLASS], {
        "personalEmail": _r(EMAIL_ADDRESS, "Personal email"),
        "mobilePhone": _r(PHONE_NUMBER, "Mobile phone"),
        "homePhone": _r(PHONE_NUMBER, "Home phone"),
        "homeAddress": _r(ADDRESS, "Home address"),
    }, "How to reach a person."),
    FG_CONSENTS: _fg("Consents and Preferences", [PROFILE_CLASS], {"consents": _o("Consents", {
        "collect": _r(CONSENT_FIELD, "Collect"),
        "share": _r(CONSENT_FIELD, "Share"),
        "marketing": _o("Marketing", {
            "any": _r(MARKETING_FIELD, "Any channel"), "email": _r(MARKETING_FIELD, "Email"),
            "sms": _r(MARKETING_FIELD, "SMS"), "push": _r(MARKETING_FIELD, "Push"),
            "call": _r(MARKETING_FIELD, "Call"),
        }),
    })}, "Consent to collect, share and market (y / n)."),
    FG_PUSH: _fg("Push Notification Details", [PROFILE_CLASS], {"pushNotificationDetails": _a(
        "Push details", _o("Push token", {
            "token": _s("Push token"), "platform": _s("Platform", enum=["apns", "fcm"]),
            "appID": _s("Application id"), "denylisted": _b("Denylisted"),
            "identity": _r(IDENTITY, "Identity associated with the token"),
        }))}, "Push tokens of the person's devices."),
    FG_SEGMENTS: _fg("Segment Membership Details", [PROFILE_CLASS], {"segmentMembership": _map(
        "Segment membership map", _map("Segment membership per namespace", _r(SEGMENT_MEMBERSHIP)))},
        "Segments the profile belongs to, by namespace then segment id."),
    FG_TEST_PROFILE: _fg("Profile test details", [PROFILE_CLASS], {
        "testProfile": _b("Test profile", default=False)}, "Marks profiles loaded for testing."),
    FG_EXT_AUDIT: _fg("External Source System Audit Details", [], {
        "extSourceSystemAudit": _r(EXT_AUDIT, "External source system audit")},
        "Audit attributes of the source system (any class)."),
    FG_COMMERCE: _fg("Commerce Details", [EVENT_CLASS], {
        "commerce": _o("Commerce", {
            "order": _o("Order", {
                "purchaseID": _s("Purchase id"), "purchaseOrderNumber": _s("Purchase order number"),
                "priceTotal": _n("Price total"), "currencyCode": _s("Currency code", pattern="^[A-Z]{3}$"),
                "payments": _a("Payments", _o("Payment", {
                    "paymentType": _s("Payment type"), "paymentAmount": _n("Payment amount"),
                    "currencyCode": _s("Currency code", pattern="^[A-Z]{3}$"),
                    "transactionID": _s("Transaction id")})),
            }),
            "purchases": _r(MEASURE, "Purchases"), "productViews": _r(MEASURE, "Product views"),
            "productListViews": _r(MEASURE, "Product list views"),
            "productListAdds": _r(MEASURE, "Product list adds"),
            "productListRemovals": _r(MEASURE, "Product list removals"),
            "productListOpens": _r(MEASURE, "Product list opens"), "checkouts": _r(MEASURE, "Checkouts"),
        }),
        "productListItems": _a("Product list items", _o("Product", {
            "SKU": _s("SKU"), "name": _s("Name"), "quantity": _i("Quantity"), "priceTotal": _n("Price total"),
            "currencyCode": _s("Currency code", pattern="^[A-Z]{3}$"), "productAddMethod": _s("Add method"),
        })),
    }, "Orders, purchases and product interactions."),
    FG_WEB: _fg("Web Details", [EVENT_CLASS], {"web": _o("Web", {
        "webPageDetails": _o("Page details", {
            "name": _s("Name"), "URL": _s("URL"), "siteSection": _s("Site section"), "server": _s("Server"),
            "isHomePage": _b("Home page"), "pageViews": _r(MEASURE, "Page views"),
        }),
        "webReferrer": _o("Referrer", {"URL": _s("URL"), "type": _s("Type")}),
        "webInteraction": _o("Interaction", {
            "name": _s("Name"), "URL": _s("URL"), "type": _s("Type", enum=["download", "exit", "other"]),
            "linkClicks": _r(MEASURE, "Link clicks"),
        }),
    })}, "Page views, referrers and link clicks."),
    FG_ORCHESTRATION: _fg("Orchestration eventID", [EVENT_CLASS], {"_experience": _o("Experience", {
        "campaign": _o("Campaign", {"orchestration": _o("Orchestration", {
            "eventID": _s("Event id", description="the orchestration eventID of the journey event"),
            "originJourneyID": _s("Origin journey id"),
        })}),
    })}, "The eventID a journey event's producer sends to start journeys."),
}


def _resources() -> dict[str, Resource]:
    out: dict[str, Resource] = {}
    for kind, defs in (("behavior", BEHAVIOR_DEFS), ("datatype", DATATYPE_DEFS), ("class", CLASS_DEFS),
                       ("fieldgroup", FIELDGROUP_DEFS)):
        for uri, body in defs.items():
            full = {"$id": uri, "meta:altId": derive_alt_id(uri), **body}
            out[uri] = Resource(uri=uri, kind=kind, body=full, version=1, standard=True)
    return out


STANDARD: dict[str, Resource] = _resources()
STANDARD_BY_ALT: dict[str, Resource] = {r.alt_id: r for r in STANDARD.values()}


def get(ident: str) -> Resource | None:
    """A standard piece by `$id` or altId."""
    return STANDARD.get(ident) or STANDARD_BY_ALT.get(ident)


def of_kind(kind: str) -> list[Resource]:
    return sorted((r for r in STANDARD.values() if r.kind == kind), key=lambda r: r.uri)
