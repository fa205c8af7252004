"""Identity namespaces and the rules an identity value must follow, as pure functions.

A record's identities come from fields marked by identity descriptors and from its `identityMap`
(`{"<namespace code>": [{"id", "authenticatedState", "primary"}]}`). `extract` finds them all,
applies the value rules and the per-record limits, and reports every broken rule as a violation in
the reference's shape `{pointerToViolation, schemaLocation, keyword, message}` — a record with a
bad identity is rejected with a reason, never silently stitched without it.

Namespace codes are case-sensitive in records (`Email`, not `email`), but two namespaces of one
sandbox never differ only by case, so a wrong-case code gets a "did you mean" hint.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, NamedTuple

from wayline.kernel.problems import FieldError, Problem, pointer
from wayline.platform.schemas.compiled import IdentityField

TYPES = ("COOKIE", "CROSS_DEVICE", "DEVICE", "EMAIL", "PHONE", "MOBILE", "NON_PEOPLE")

MAX_VALUE_CHARS = 1024
MAX_CODE_CHARS = 64
MAX_NAME_CHARS = 200
MAX_DESCRIPTION_CHARS = 1024
FORBIDDEN_VALUES = frozenset({"null", "anonymous", "invalid"})
_LONGEST_REFUSED = max(map(len, FORBIDDEN_VALUES))  # a longer value (lower-casing never shortens) is none of them
DEFAULT_AUTHENTICATED_STATE = "ambiguous"  # the identity item's schema default

_ECID = re.compile(r"[0-9]{38}")
_CODE = re.compile(r"[A-Za-z0-9_]+")


@dataclass(frozen=True, slots=True)
class Namespace:
    code: str
    id: int
    name: str
    type: str
    custom: bool = False
    description: str = ""

    def to_api(self) -> dict[str, Any]:
        return {"code": self.code, "id": self.id, "name": self.name, "idType": self.type,
                "custom": self.custom, "description": self.description}


STANDARD: dict[str, Namespace] = {ns.code: ns for ns in (
    Namespace("ECID", 4, "Experience Cloud ID", "COOKIE", description="Experience Cloud ID, 38 digits"),
    Namespace("Email", 6, "Email", "EMAIL", description="Email address"),
    Namespace("Phone", 7, "Phone", "PHONE", description="Phone number"),
    Namespace("WAID", 8, "Windows AID", "COOKIE", description="Windows advertising id"),
    Namespace("TNTID", 9, "TNTID", "COOKIE", description="Target id"),
    Namespace("AdCloud", 411, "AdCloud", "COOKIE", description="Advertising cloud id"),
    Namespace("GAID", 20914, "Google Ad ID (GAID)", "DEVICE", description="Google advertising id"),
    Namespace("IDFA", 20915, "Apple IDFA (ID for Advertisers)", "DEVICE", description="Apple advertising id"),
)}
_STANDARD_FOLDED = {code.casefold(): code for code in STANDARD}

_NAMESPACE_FIELDS = ("code", "name", "idType", "description")


def check_custom_namespace(body: Any, existing_codes: set[str]) -> dict[str, str]:
    """The cleaned fields of a `POST /identity/namespaces` body, or a Problem.

    Returns the body's fields cleaned, under their API names: `{"code", "name", "idType", "description"}`
    (the caller allocates the numeric id). 422 for malformed fields (all of them at once, each at its
    pointer); 409 when the code is already used in the sandbox, case-insensitively.
    """
    if not isinstance(body, dict):
        raise Problem(422, "validation", "Invalid namespace", "the body is a JSON object",
                      [FieldError("", "expected an object with code, name and idType", "object")])
    errors: list[FieldError] = []
    for key in body:
        if key not in _NAMESPACE_FIELDS:
            errors.append(FieldError(pointer([key]), f"unknown field {key!r}; a namespace has "
                                                     f"{', '.join(_NAMESPACE_FIELDS)}"))
    code = body.get("code")
    if not isinstance(code, str) or not code:
        errors.append(FieldError("/code", "code is required: a non-empty string", "string"))
    elif len(code) > MAX_CODE_CHARS or not _CODE.fullmatch(code):
        errors.append(FieldError("/code", f"code is 1 to {MAX_CODE_CHARS} letters, digits or underscores",
                                 "^[A-Za-z0-9_]{1,64}$"))
    elif code.casefold() in _STANDARD_FOLDED:
        errors.append(FieldError("/code", f"{code!r} is the standard namespace "
                                          f"{_STANDARD_FOLDED[code.casefold()]!r}; choose another code"))
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        errors.append(FieldError("/name", "name is required: a non-blank string", "string"))
    elif len(name.strip()) > MAX_NAME_CHARS:
        errors.append(FieldError("/name", f"name is at most {MAX_NAME_CHARS} characters"))
    id_type = body.get("idType")
    if id_type not in TYPES:
        errors.append(FieldError("/idType", f"idType is one of {', '.join(TYPES)}", "|".join(TYPES)))
    description = body.get("description")
    if description is None:
        description = ""
    if not isinstance(description, str):
        errors.append(FieldError("/description", "description is a string", "string"))
    elif len(description) > MAX_DESCRIPTION_CHARS:
        errors.append(FieldError("/description",
                                 f"description is at most {MAX_DESCRIPTION_CHARS} characters"))
    if errors:
        raise Problem(422, "validation", "Invalid namespace", "the namespace has invalid fields", errors)
    assert isinstance(code, str) and isinstance(name, str) and isinstance(id_type, str)
    clash = next((c for c in existing_codes if c.casefold() == code.casefold()), None)
    if clash is not None:
        raise Problem(409, "conflict", "Conflict", f"the namespace code {clash!r} already exists in this "
                                                   f"sandbox (codes are unique regardless of case)")
    return {"code": code, "name": name.strip(), "idType": id_type, "description": description}


# -- identity values ------------------------------------------------------------------------------


class Ident(NamedTuple):
    """An identity: (namespace code, stored value). A tuple, so hashing, comparing and ordering it (the
    graph code does little else) run in C: about 3x faster than a frozen dataclass, measured."""

    ns: str  # namespace code
    value: str


class Found(NamedTuple):  # a tuple: made once per identity ingested, several times cheaper than a dataclass
    ident: Ident
    primary: bool
    authenticated_state: str | None  # from identityMap items; None for descriptor fields
    pointer: str  # where it was (first) found: "/identityMap/Email/0/id", "/personalEmail/address"


# new_ident((ns, value)) is Ident(ns, value) without the Python-level __new__ a NamedTuple call runs,
# for the loops that make one per identity read or received (ingestion's writer, prepare workers).
new_ident = partial(tuple.__new__, Ident)
new_found = partial(tuple.__new__, Found)


def normalise(ns: str, value: str) -> str:
    """The stored form of a value: emails are compared without case or surrounding spaces."""
    return value.strip().lower() if ns == "Email" else value


def check_value(ns: str, value: Any) -> str | None:
    """None when `value` may be an identity of namespace `ns`, else why not."""
    if not isinstance(value, str):
        return f"an identity value is a string, not {_json_type(value)}"
    stripped = value.strip()
    if not stripped:
        return "an identity value is never empty or blank"
    if stripped.lower() in FORBIDDEN_VALUES:
        return f"{stripped!r} is not an identity value (null, anonymous and invalid are refused)"
    if len(value) > MAX_VALUE_CHARS:
        return f"an identity value is at most {MAX_VALUE_CHARS:,} characters, this one has {len(value):,}"
    if ns == "ECID" and not _ECID.fullmatch(value):
        return f"an ECID is exactly 38 digits, not {value[:60]!r}"
    return None


def extract(entity: dict[str, Any], fields: tuple[IdentityField, ...], namespaces: Mapping[str, Namespace], *,
            max_per_record: int = 20, graph_limit: int = 50) -> tuple[list[Found], list[dict[str, Any]]]:
    """The identities of one record and the identity rules it breaks: `(identities, violations)`.

    Identities are read from the descriptor `fields` in order, then from `identityMap` in document
    order; a value found twice (emails after normalising) counts once, primary if any occurrence is.
    The primary identity comes first; when none is marked, the first one found is made primary.
    `namespaces` holds the sandbox's namespaces (standard and custom) by code. When there are
    violations the record is to be rejected and the identity list may be incomplete.
    """
    violations: list[dict[str, Any]] = []
    found: dict[Ident, Found] = {}
    primaries: list[Found] = []

    def add(ns: str, value: Any, primary: bool, state: str | None, where: str, flag: str) -> None:
        # The common case decided inline (a string longer than every refused word and without
        # surrounding blanks is neither); anything else gets check_value's full rules.
        if not (type(value) is str and _LONGEST_REFUSED < len(value) <= MAX_VALUE_CHARS and not value[0].isspace()
                and not value[-1].isspace() and (ns != "ECID" or _ECID.fullmatch(value))):
            problem = check_value(ns, value)
            if problem is not None:
                violations.append(_violation(where, problem))
                return
        ident = Ident(ns, normalise(ns, value))
        seen = found.get(ident)
        if seen is None:
            found[ident] = Found(ident, primary, state, where)
        elif (primary and not seen.primary) or (state is not None and seen.authenticated_state is None):
            found[ident] = Found(ident, seen.primary or primary, seen.authenticated_state or state,
                                 seen.pointer)
        if primary:
            if not primaries:
                primaries.append(Found(ident, True, state, where))
            elif primaries[0].ident != ident and all(p.ident != ident for p in primaries):
                first = primaries[0]
                violations.append(_violation(flag, (
                    f"a second primary identity {ident.ns}:{ident.value!r}; {first.ident.ns}:"
                    f"{first.ident.value!r} at {first.pointer} is already primary, "
                    f"and a record has at most one")))
                primaries.append(Found(ident, True, state, where))

    for f in fields:
        value = _value_at(entity, f.path)
        if value is None:
            continue
        where = pointer(f.path)
        if f.namespace not in namespaces:
            violations.append(_violation(where, _unknown(f.namespace, namespaces)))
            continue
        add(f.namespace, value, f.primary, None, where, where)

    has_map = "identityMap" in entity and entity["identityMap"] is not None
    if has_map:
        identity_map = entity["identityMap"]
        if not isinstance(identity_map, dict):
            violations.append(_violation("/identityMap",
                                         "identityMap is an object of namespace code → identities"))
            identity_map = {}
        for code, items in identity_map.items():
            where_ns = (f"/identityMap/{code}" if type(code) is str and "~" not in code and "/" not in code
                        else pointer(["identityMap", code]))
            if code not in namespaces:
                violations.append(_violation(where_ns, _unknown(code, namespaces)))
                continue
            if not isinstance(items, list):
                violations.append(_violation(where_ns, "the identities of a namespace are an array of items"))
                continue
            base = f"{where_ns}/"  # pointers as plain strings: this runs for every identity ingested
            for i, item in enumerate(items):
                if not isinstance(item, dict):
                    violations.append(_violation(f"{base}{i}", "an identity item is "
                                                 "an object with id, authenticatedState, primary"))
                    continue
                state = item.get("authenticatedState")
                if "id" not in item:
                    violations.append(_violation(f"{base}{i}/id", "an identity item needs an id"))
                    continue
                add(code, item["id"], item.get("primary") is True,
                    state if isinstance(state, str) else DEFAULT_AUTHENTICATED_STATE,
                    f"{base}{i}/id", f"{base}{i}/primary")

    count = len(found)
    where_all = "/identityMap" if has_map else ""
    if count > max_per_record:
        violations.append(_violation(where_all, f"the record has {count} distinct identities; "
                                                f"at most {max_per_record} are allowed per record"))
    if count > graph_limit:
        violations.append(_violation(where_all, f"the record would link {count} identities at once, "
                                                f"more than the identity graph limit of {graph_limit}"))

    ordered = list(found.values())
    if not ordered:
        return [], violations
    head = primaries[0].ident if primaries else ordered[0].ident
    first = found[head]
    if not first.primary:
        first = Found(first.ident, True, first.authenticated_state, first.pointer)
    return [first, *(f for f in ordered if f.ident != head)], violations


def _value_at(entity: Any, path: tuple[str, ...]) -> Any:
    node = entity
    for name in path:
        if not isinstance(node, dict):
            return None
        node = node.get(name)
    return node


def _unknown(code: str, namespaces: Mapping[str, Namespace]) -> str:
    hint = next((c for c in namespaces if c.casefold() == str(code).casefold()), None)
    if hint is not None:
        return f"unknown identity namespace {code!r}: codes are case-sensitive, did you mean {hint!r}?"
    return f"unknown identity namespace {code!r}; create it with POST /identity/namespaces"


def _violation(where: str, message: str) -> dict[str, Any]:
    return {"pointerToViolation": where, "schemaLocation": "#", "keyword": "identity", "message": message}


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
