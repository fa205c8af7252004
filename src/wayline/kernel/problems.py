"""RFC 9457 problem details, shared by every API.

A `Problem` is raised anywhere below an API; the app turns it into `application/problem+json`.
Validation problems carry `errors`: one entry per failing field, with its JSON pointer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

PROBLEM_BASE = "https://wayline.dev/problems/"
MEDIA_TYPE = "application/problem+json"


@dataclass
class FieldError:
    pointer: str
    detail: str
    expected: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"pointer": self.pointer, "detail": self.detail}
        if self.expected is not None:
            d["expected"] = self.expected
        return d


@dataclass
class Problem(Exception):
    status: int
    slug: str
    title: str
    detail: str = ""
    errors: list[FieldError] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.status} {self.title}: {self.detail}"

    @property
    def type(self) -> str:
        return PROBLEM_BASE + self.slug

    def to_dict(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"type": self.type, "title": self.title, "status": self.status}
        if self.detail:
            body["detail"] = self.detail
        if instance:
            body["instance"] = instance
        if self.errors:
            body["errors"] = [e.to_dict() for e in self.errors]
        body.update(self.extra)
        return body


def pointer(path: list[Any] | tuple[Any, ...]) -> str:
    """JSON pointer (RFC 6901) of a path of keys and indexes."""
    out = ""
    for part in path:
        out += "/" + str(part).replace("~", "~0").replace("/", "~1")
    return out


def not_found(what: str, ident: Any) -> Problem:
    return Problem(404, "not-found", "Not found", f"{what} {ident!r} does not exist in this sandbox")


def invalid(detail: str, errors: list[FieldError] | None = None) -> Problem:
    return Problem(422, "validation", "Invalid request", detail, errors or [])


def bad_request(slug: str, title: str, detail: str, errors: list[FieldError] | None = None) -> Problem:
    return Problem(400, slug, title, detail, errors or [])


def conflict(detail: str) -> Problem:
    return Problem(409, "conflict", "Conflict", detail)
