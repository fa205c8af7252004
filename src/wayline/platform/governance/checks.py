"""Request checks, pure: custom labels, custom actions, policies and label lists, each failing place
named by its JSON pointer. The known labels and actions are passed in, so nothing here reads."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import Any
from urllib.parse import unquote

from wayline.kernel.problems import FieldError, Problem, pointer
from wayline.platform.governance.model import CUSTOM, STATUSES, EntityRef

NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
MAX_DENY_DEPTH = 10
MAX_DENY_OPERANDS = 200
MAX_ENTITIES = 100
MAX_BULK = 100
# Keys GET answers carry that a client may send back (GET → edit → PUT): ignored, not refused.
_SERVER_KEYS = {"id", "version", "created", "updated", "core", "ref", "_links", "imsOrg", "sandboxName",
                "createdClient", "createdUser", "updatedClient", "updatedUser"}


def problem(title: str, errors: list[FieldError], status: int = 422) -> Problem:
    detail = errors[0].detail if len(errors) == 1 else f"{len(errors)} fields are not valid: " + "; ".join(
        f"{e.pointer}: {e.detail}" for e in errors[:5])
    return Problem(status, "validation" if status == 422 else "not-found", title, detail, errors)


def _object(body: Any, title: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise problem(title, [FieldError("/", "expected a JSON object", "object")])
    return body


def _unknown_keys(body: dict[str, Any], allowed: set[str], errors: list[FieldError]) -> None:
    for k in body:
        if k not in allowed and k not in _SERVER_KEYS:
            errors.append(FieldError(pointer([k]), "unknown field", ", ".join(sorted(allowed))))


def _text(body: dict[str, Any], key: str, limit: int, errors: list[FieldError], *, required: bool = False,
          default: str = "") -> str:
    value = body.get(key, default)
    if (required and key not in body) or not isinstance(value, str) or len(value) > limit \
            or (required and not value.strip()):
        errors.append(FieldError(f"/{key}", f"{'a non-empty ' if required else 'a '}string of at most {limit} "
                                 "characters", "string"))
        return default
    return value.strip() if required else value


def _name(body: dict[str, Any], path_name: str | None, what: str, errors: list[FieldError]) -> str:
    name = body.get("name", path_name)
    if path_name is not None and name != path_name:
        errors.append(FieldError("/name", f"the {what}'s name is its id: it must be {path_name!r} (the name in "
                                 "the path); create a new one to rename", path_name))
    elif not isinstance(name, str) or not NAME_RE.match(name):
        errors.append(FieldError("/name", "1 to 64 letters, digits, '_' or '-', starting with a letter",
                                 NAME_RE.pattern))
    return name if isinstance(name, str) else ""


def name_clash(name: str, taken: Collection[str]) -> str | None:
    """The existing name `name` clashes with: names are case-sensitive but unique ignoring case."""
    low = name.lower()
    return next((t for t in taken if t.lower() == low), None)


def check_custom_label(body: Any, *, path_name: str | None = None) -> dict[str, str]:
    """name, friendlyName, description of a custom label (category is always Custom)."""
    body = _object(body, "Invalid label")
    errors: list[FieldError] = []
    _unknown_keys(body, {"name", "friendlyName", "description", "category"}, errors)
    name = _name(body, path_name, "label", errors)
    friendly = _text(body, "friendlyName", 200, errors, default=name)
    description = _text(body, "description", 2000, errors)
    if body.get("category", CUSTOM) != CUSTOM:
        errors.append(FieldError("/category", "a sandbox's labels are of category Custom", CUSTOM))
    if errors:
        raise problem("Invalid label", errors)
    return {"name": name, "friendly_name": friendly or name, "description": description}


def check_custom_action(body: Any, *, path_name: str | None = None) -> dict[str, str]:
    """name and description of a custom marketing action."""
    body = _object(body, "Invalid marketing action")
    errors: list[FieldError] = []
    _unknown_keys(body, {"name", "description"}, errors)
    name = _name(body, path_name, "marketing action", errors)
    description = _text(body, "description", 2000, errors)
    if errors:
        raise problem("Invalid marketing action", errors)
    return {"name": name, "description": description}


def unknown_label(label: str, known: Collection[str], where: str) -> FieldError:
    near = name_clash(label, known)
    hint = f" (labels are case-sensitive: did you mean {near!r}?)" if near else ""
    return FieldError(where, f"unknown label {label!r}{hint}", "a core label (C1-C12, I1, I2, S1, S2) or a "
                      "custom label of this sandbox")


def label_list(labels: Any, known: Collection[str], where: str, errors: list[FieldError]) -> tuple[str, ...]:
    """A list of known labels, de-duplicated in order; problems go to `errors`."""
    if not isinstance(labels, list):
        errors.append(FieldError(where, "expected an array of label names", "array of string"))
        return ()
    out: list[str] = []
    for i, label in enumerate(labels):
        if not isinstance(label, str):
            errors.append(FieldError(f"{where}/{i}", "a label name is a string", "string"))
        elif label not in known:
            errors.append(unknown_label(label, known, f"{where}/{i}"))
        elif label not in out:
            out.append(label)
    return tuple(out)


def check_labels(labels: Any, known: Collection[str], where: str = "/labels") -> tuple[str, ...]:
    """Known labels (case-sensitive), de-duplicated in order, or a 422 naming each unknown one."""
    errors: list[FieldError] = []
    out = label_list(labels, known, where, errors)
    if errors:
        raise problem("Unknown labels", errors)
    return out


def check_deny(node: Any, known: Collection[str], where: str = "/deny") -> list[FieldError]:
    """Every problem of a deny expression: `{label}` leaves under `{operator: AND|OR, operands}`."""
    errors: list[FieldError] = []
    count = [0]
    _deny(node, known, where, 0, errors, count)
    if count[0] > MAX_DENY_OPERANDS:
        errors.append(FieldError(where, f"at most {MAX_DENY_OPERANDS} operands in all"))
    return errors


def _deny(node: Any, known: Collection[str], where: str, depth: int, errors: list[FieldError],
          count: list[int]) -> None:
    if not isinstance(node, dict):
        errors.append(FieldError(where, "expected {\"label\": …} or {\"operator\": …, \"operands\": […]}", "object"))
        return
    count[0] += 1
    if "label" in node:
        for k in node:
            if k != "label":
                errors.append(FieldError(f"{where}/{pointer([k])[1:]}", "a label operand has only 'label'"))
        label = node["label"]
        if not isinstance(label, str):
            errors.append(FieldError(f"{where}/label", "a label name is a string", "string"))
        elif label not in known:
            errors.append(unknown_label(label, known, f"{where}/label"))
        return
    for k in node:
        if k not in ("operator", "operands"):
            errors.append(FieldError(f"{where}/{pointer([k])[1:]}", "unknown field", "operator, operands or label"))
    if node.get("operator") not in ("AND", "OR"):
        errors.append(FieldError(f"{where}/operator", "AND or OR", "AND|OR"))
    operands = node.get("operands")
    if not isinstance(operands, list) or not operands:
        errors.append(FieldError(f"{where}/operands", "a non-empty array of operands", "array"))
        return
    if depth >= MAX_DENY_DEPTH:
        errors.append(FieldError(f"{where}/operands", f"expressions nest at most {MAX_DENY_DEPTH} deep"))
        return
    for i, child in enumerate(operands):
        _deny(child, known, f"{where}/operands/{i}", depth + 1, errors, count)


def parse_action_ref(ref: Any) -> tuple[str | None, str] | None:
    """(core|custom|None, name) of `name`, `/dulepolicy/marketingActions/core/name` or a full URL."""
    if not isinstance(ref, str) or not ref:
        return None
    m = re.search(r"marketingActions/(core|custom)/([^/?#]+)(?:/constraints)?/?$", ref)
    if m:
        return m.group(1), unquote(m.group(2))
    return None if "/" in ref else (None, ref)


def resolve_action(ref: Any, actions: Mapping[str, str], where: str, errors: list[FieldError]) -> str | None:
    """The canonical ref of a marketing action reference; `actions` maps every known name to its ref."""
    parsed = parse_action_ref(ref)
    found = actions.get(parsed[1]) if parsed else None
    if parsed is None or found is None or (parsed[0] and not found.endswith(f"/{parsed[0]}/{parsed[1]}")):
        errors.append(FieldError(where, f"unknown marketing action {ref!r}", "a core marketing action or a custom "
                                 "one of this sandbox: a name or /dulepolicy/marketingActions/{core|custom}/{name}"))
        return None
    return found


def check_status(value: Any, where: str, errors: list[FieldError]) -> str | None:
    if value not in STATUSES:
        errors.append(FieldError(where, "DRAFT, ENABLED or DISABLED", "|".join(STATUSES)))
        return None
    return str(value)


def check_policy(body: Any, *, labels: Collection[str], actions: Mapping[str, str],
                 partial: bool = False) -> dict[str, Any]:
    """A custom policy's columns from a full (POST, PUT) or partial (PATCH result) body."""
    body = _object(body, "Invalid policy")
    errors: list[FieldError] = []
    out: dict[str, Any] = {}
    _unknown_keys(body, {"name", "description", "status", "marketingActionRefs", "deny"}, errors)
    if "name" in body or not partial:
        name = _text(body, "name", 200, errors, required=True)
        out["name"] = name
    if "description" in body:
        out["description"] = _text(body, "description", 2000, errors)
    elif not partial:
        out["description"] = ""
    if "status" in body:
        out["status"] = check_status(body["status"], "/status", errors)
    if "marketingActionRefs" in body or not partial:
        refs = body.get("marketingActionRefs")
        if not isinstance(refs, list) or not refs:
            errors.append(FieldError("/marketingActionRefs", "a non-empty array of marketing action references",
                                     "array"))
        else:
            resolved = [resolve_action(r, actions, f"/marketingActionRefs/{i}", errors) for i, r in enumerate(refs)]
            out["action_refs"] = list(dict.fromkeys(r for r in resolved if r))
    if "deny" in body or not partial:
        errors += check_deny(body.get("deny"), labels)
        out["deny"] = body.get("deny")
    if errors:
        raise problem("Invalid policy", errors)
    return out


def check_core_status_patch(body: Any) -> str:
    """The new status from `{"status": …}` or `[{"op": "replace", "path": "/status", "value": …}]`."""
    errors: list[FieldError] = []
    status: Any = None
    if isinstance(body, dict):
        for k in body:
            if k != "status":
                errors.append(FieldError(pointer([k]), "a core policy's status is all a sandbox can change",
                                         "status"))
        status = body.get("status")
        where = "/status"
    elif isinstance(body, list) and len(body) == 1 and isinstance(body[0], dict):
        op = body[0]
        if op.get("op") not in ("replace", "add") or op.get("path") != "/status":
            errors.append(FieldError("/0", "a core policy's status is all a sandbox can change",
                                     '{"op": "replace", "path": "/status", "value": "ENABLED"}'))
        status = op.get("value")
        where = "/0/value"
    else:
        raise problem("Invalid patch", [FieldError("/", "send {\"status\": …} or one JSON Patch replace of /status",
                                                   "object or array")])
    if not errors:
        check_status(status, where, errors)
    if errors:
        raise problem("Invalid patch", errors)
    return str(status)


def parse_entities(raw: Any, where: str, errors: list[FieldError], *,
                   types: Collection[str] = ("dataSet", "field")) -> list[EntityRef]:
    """`[{"entityType": "dataSet", "entityId": …, "entityMeta": {"fields": [paths]}},
    {"entityType": "field", "entityId": <dataset id or schema $id>, "path": "/person/name"}, …]`."""
    if not isinstance(raw, list) or not raw or len(raw) > MAX_ENTITIES:
        errors.append(FieldError(where or "/", f"a non-empty array of at most {MAX_ENTITIES} entities",
                                 '[{"entityType": "dataSet", "entityId": "…"}]'))
        return []
    out: list[EntityRef] = []
    for i, e in enumerate(raw):
        at = f"{where}/{i}"
        if not isinstance(e, dict):
            errors.append(FieldError(at, "an entity is an object", "object"))
            continue
        kind, ident = e.get("entityType"), e.get("entityId")
        bad = len(errors)
        if kind not in types:
            errors.append(FieldError(f"{at}/entityType", f"unknown entity type {kind!r}", " or ".join(types)))
        if not isinstance(ident, str) or not ident:
            errors.append(FieldError(f"{at}/entityId", "the entity's id", "string"))
        paths: tuple[Any, ...] = ()
        if kind == "field":
            if not isinstance(e.get("path"), str) or not e["path"]:
                errors.append(FieldError(f"{at}/path", "a field entity names its path", "/person/name"))
            else:
                paths = (e["path"],)
        elif kind == "dataSet" and e.get("entityMeta") is not None:
            meta = e["entityMeta"]
            wanted = meta.get("fields") if isinstance(meta, dict) else None
            if not isinstance(wanted, list) or not all(isinstance(p, str) and p for p in wanted):
                errors.append(FieldError(f"{at}/entityMeta/fields", "an array of field paths", "array of string"))
            else:
                paths = tuple(wanted)
        if len(errors) == bad:
            out.append(EntityRef(str(kind), str(ident), paths))
    return out


def parse_bulk(body: Any) -> list[Any]:
    """The items of a bulk evaluation: a non-empty array of at most MAX_BULK objects."""
    if not isinstance(body, list) or not body or len(body) > MAX_BULK:
        raise problem("Invalid bulk evaluation", [FieldError("/", f"a non-empty array of at most {MAX_BULK} "
                                                             "evaluation requests", "array")])
    return body


def action_of_item(item: dict[str, Any], where: str, errors: list[FieldError]) -> str | None:
    """The marketing action an evaluation request names (evalRef, marketingActionRef or marketingAction)."""
    for key in ("evalRef", "marketingActionRef", "marketingAction"):
        if key in item:
            if parse_action_ref(item[key]) is None:
                errors.append(FieldError(f"{where}/{key}", "a marketing action name or reference",
                                         "/dulepolicy/marketingActions/{core|custom}/{name}"))
                return None
            return str(item[key])
    errors.append(FieldError(where or "/", "name the marketing action: evalRef, marketingActionRef or "
                             "marketingAction", "/dulepolicy/marketingActions/core/emailTargeting"))
    return None
