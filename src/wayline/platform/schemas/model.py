"""The registry's vocabulary: resource kinds, ids, and the `Resource` value every module passes around."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from wayline.kernel.problems import FieldError, Problem

KINDS = ("class", "fieldgroup", "datatype", "schema")
# What the reference's paths and `meta:resourceType` call each kind.
PLURAL = {"class": "classes", "fieldgroup": "fieldgroups", "datatype": "datatypes", "schema": "schemas",
          "behavior": "behaviors"}
KIND_OF_PLURAL = {v: k for k, v in PLURAL.items()}
TITLE = {"class": "class", "fieldgroup": "field group", "datatype": "data type", "schema": "schema",
         "behavior": "behavior"}

RECORD_BEHAVIOR = "https://ns.adobe.com/xdm/data/record"
TIME_SERIES_BEHAVIOR = "https://ns.adobe.com/xdm/data/time-series"
BEHAVIORS = {RECORD_BEHAVIOR: "record", TIME_SERIES_BEHAVIOR: "time-series"}
PROFILE_CLASS = "https://ns.adobe.com/xdm/context/profile"
EVENT_CLASS = "https://ns.adobe.com/xdm/context/experienceevent"
UNION_TAG = "union"

# Keys the registry computes or manages; a client may send them back (GET → edit → PUT), they are
# dropped from the definition rather than refused.
SERVER_KEYS = frozenset({
    "meta:resourceType", "version", "meta:extends", "meta:registryMetadata", "meta:immutableTags",
    "meta:tenantNamespace", "meta:containerId", "meta:sandboxId", "meta:sandboxType", "meta:usageCount",
    "meta:behaviorType", "meta:createdDate",
})
# Namespaces of the standard pieces; tenants cannot define resources in them.
RESERVED_PREFIXES = ("https://ns.adobe.com/xdm/", "https://ns.adobe.com/experience/", "https://ns.wayline.dev/xdm/")
MAX_URI = 500
_ALT_SAFE = re.compile(r"[^A-Za-z0-9_\-]")
ALT_ID_RE = re.compile(r"^_[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*$")


@dataclass(frozen=True)
class Resource:
    """One class, field group, data type, behavior or schema, standard or of a sandbox."""

    uri: str
    kind: str
    body: dict[str, Any]
    version: int = 1
    profile_enabled: bool = False
    created_ms: int = 0
    updated_ms: int = 0
    standard: bool = False
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def alt_id(self) -> str:
        return str(self.body.get("meta:altId") or derive_alt_id(self.uri))

    @property
    def title(self) -> str:
        return str(self.body.get("title", ""))


def derive_alt_id(uri: str) -> str:
    """The short id of a `$id`, the way the reference spells it: host dropped, path joined by dots."""
    parts = urlsplit(uri)
    segs = [s for s in parts.path.split("/") if s] or [parts.netloc or "resource"]
    return "_" + ".".join(_ALT_SAFE.sub("_", s) for s in segs)


def new_uri(tenant_id: str, kind: str) -> str:
    return f"https://ns.wayline.dev/{tenant_id}/{PLURAL[kind]}/{secrets.token_hex(16)}"


def tenant_namespace(tenant_id: str) -> str:
    return f"_{tenant_id}"


def check_uri(uri: Any, where: str = "/$id") -> str:
    """A `$id` must be an absolute http(s) URI without fragment; returns it."""
    ok = (isinstance(uri, str) and 0 < len(uri) <= MAX_URI and not any(c.isspace() for c in uri)
          and "#" not in uri)
    if ok:
        parts = urlsplit(uri)
        ok = parts.scheme in ("http", "https") and bool(parts.netloc)
    if not ok:
        raise Problem(422, "validation", "Invalid $id",
                      f"$id must be an absolute http(s) URI of at most {MAX_URI} characters, without '#'",
                      [FieldError(where, "not an absolute http(s) URI", "https://…")])
    return uri


def is_reserved(uri: str) -> bool:
    return uri.startswith(RESERVED_PREFIXES)


def kind_of_plural(plural: str, *, allowed: tuple[str, ...]) -> str:
    kind = KIND_OF_PLURAL.get(plural)
    if kind is None or kind not in allowed:
        raise Problem(404, "not-found", "Not found",
                      f"no resource kind {plural!r}; use one of {', '.join(PLURAL[k] for k in allowed)}")
    return kind


def invalid(detail: str, errors: list[FieldError] | None = None, title: str = "Invalid schema") -> Problem:
    """The registry's 422: a stable type, a readable detail and one pointer per failing place."""
    return Problem(422, "validation", title, detail, errors or [])


def pointer_field(parts: tuple[str, ...] | list[str]) -> str:
    """`person.name.firstName` of a composed-schema path like ('properties','person','properties',…)."""
    out, i = [], 0
    parts = list(parts)
    while i < len(parts):
        p = parts[i]
        if p == "properties" and i + 1 < len(parts):
            out.append(parts[i + 1])
            i += 2
            continue
        if p == "items":
            out.append("[]")
        elif p == "additionalProperties":
            out.append("*")
        i += 1
    return ".".join(out).replace(".[]", "[]") or "(root)"
