"""SQL of governance: custom labels, custom actions, policies and core policy statuses.

Reads and units of work take a Connection; every write is audited in its own transaction. Field
labels and what data carries which labels are in `lineage`.
"""

from __future__ import annotations

import secrets
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from wayline.kernel.paging import page
from wayline.kernel.problems import FieldError, Problem, not_found
from wayline.kernel.tenancy import audit
from wayline.platform import tables as pt
from wayline.platform.governance import checks, core
from wayline.platform.governance import tables as t
from wayline.platform.governance.model import CUSTOM, Action, Label, Policy, action_ref
from wayline.platform.schemas.patching import apply

L, A, P, S, F = (t.governance_labels, t.governance_actions, t.governance_policies, t.governance_core_status,
                 t.governance_field_labels)


def check_if_match(header: str | None, version: int) -> None:
    """If-Match must name the current version (the ETag) when sent; '*' matches any."""
    if header is None or header.strip() == "*":
        return
    tags = [x.strip().removeprefix("W/").strip('"') for x in header.split(",")]
    if str(version) not in tags:
        raise Problem(412, "precondition-failed", "Precondition failed",
                      f"If-Match {header} does not match the current version (ETag \"{version}\"); read it "
                      "again and retry")


def in_use(what: str, users: list[str]) -> Problem:
    shown = ", ".join(users[:10]) + (" …" if len(users) > 10 else "")
    return Problem(409, "in-use", "In use", f"{what} is in use by {shown}; remove those uses first",
                   extra={"usedBy": users})


class _Row:
    """Attribute access over a mapping row (page() hands mappings to its shape function)."""

    def __init__(self, m: Any) -> None:
        self.__dict__.update(dict(m))


# -- labels -----------------------------------------------------------------------------------------

def _label(row: Any) -> Label:
    return Label(row.name, row.friendly_name, row.description, CUSTOM, core=False, version=row.version,
                 created_ms=row.created_ms, updated_ms=row.updated_ms)


def custom_labels(conn: Connection, sandbox_id: str) -> list[Label]:
    rows = conn.execute(sa.select(L).where(L.c.sandbox_id == sandbox_id).order_by(L.c.name)).all()
    return [_label(r) for r in rows]


def list_custom_labels(conn: Connection, sandbox_id: str, *, limit: int, cursor: str | None) -> dict[str, Any]:
    return page(conn, sa.select(L).where(L.c.sandbox_id == sandbox_id), L.c.name, limit=limit, cursor=cursor,
                shape=lambda r: _label(_Row(r)).to_api())


def get_custom_label(conn: Connection, sandbox_id: str, name: str) -> Label:
    row = conn.execute(sa.select(L).where(L.c.sandbox_id == sandbox_id, L.c.name == name)).first()
    if row is None:
        raise not_found("custom label", name)
    return _label(row)


def known_labels(conn: Connection, sandbox_id: str) -> set[str]:
    """Every label a sandbox may use: the core ones and its custom ones."""
    custom = conn.execute(sa.select(L.c.name).where(L.c.sandbox_id == sandbox_id)).scalars()
    return set(core.LABELS_BY_NAME) | set(custom)


def create_label(conn: Connection, *, sandbox_id: str, body: Any, actor: str, now: int) -> Label:
    cols = checks.check_custom_label(body)
    clash = checks.name_clash(cols["name"], known_labels(conn, sandbox_id))
    if clash:
        raise Problem(409, "conflict", "Conflict", f"label {clash!r} exists; label names are unique ignoring case",
                      [FieldError("/name", f"taken by {clash!r}")])
    conn.execute(L.insert().values(sandbox_id=sandbox_id, version=1, created_ms=now, updated_ms=now, **cols))
    label = get_custom_label(conn, sandbox_id, cols["name"])
    audit(conn, sandbox_id=sandbox_id, actor=actor, action="create", resource_type="label",
          resource_id=label.name, after=label.to_api())
    return label


def update_label(conn: Connection, *, sandbox_id: str, name: str, body: Any, actor: str, now: int,
                 if_match: str | None = None) -> Label:
    before = get_custom_label(conn, sandbox_id, name)
    check_if_match(if_match, before.version)
    cols = checks.check_custom_label(body, path_name=name)
    cols.pop("name")
    conn.execute(L.update().where(L.c.sandbox_id == sandbox_id, L.c.name == name)
                 .values(version=before.version + 1, updated_ms=now, **cols))
    after = get_custom_label(conn, sandbox_id, name)
    audit(conn, sandbox_id=sandbox_id, actor=actor, action="update", resource_type="label", resource_id=name,
          before=before.to_api(), after=after.to_api())
    return after


def label_users(conn: Connection, sandbox_id: str, name: str) -> list[str]:
    """What uses a label: policies, datasets and field labels of the sandbox."""
    users = [f"policy {p.id}" for p in custom_policies(conn, sandbox_id) if name in _deny_labels(p.deny)]
    for ds_id, labels in conn.execute(sa.select(pt.datasets.c.id, pt.datasets.c.labels)
                                      .where(pt.datasets.c.sandbox_id == sandbox_id)).all():
        if name in (labels or ()):
            users.append(f"dataset {ds_id}")
    for uri, labels in conn.execute(sa.select(F.c.resource_uri, F.c.labels).where(F.c.sandbox_id == sandbox_id)):
        if any(name in ls for ls in (labels or {}).values()):
            users.append(f"field labels of {uri}")
    return users


def _deny_labels(node: Any) -> set[str]:
    if isinstance(node, dict) and "label" in node:
        return {node["label"]}
    return set().union(*(_deny_labels(x) for x in node.get("operands", ()))) if isinstance(node, dict) else set()


def delete_label(conn: Connection, *, sandbox_id: str, name: str, actor: str, if_match: str | None = None) -> None:
    before = get_custom_label(conn, sandbox_id, name)
    check_if_match(if_match, before.version)
    users = label_users(conn, sandbox_id, name)
    if users:
        raise in_use(f"label {name!r}", users)
    conn.execute(L.delete().where(L.c.sandbox_id == sandbox_id, L.c.name == name))
    audit(conn, sandbox_id=sandbox_id, actor=actor, action="delete", resource_type="label", resource_id=name,
          before=before.to_api())


# -- marketing actions ------------------------------------------------------------------------------

def _action(row: Any) -> Action:
    return Action(row.name, row.description, core=False, version=row.version, created_ms=row.created_ms,
                  updated_ms=row.updated_ms)


def list_custom_actions(conn: Connection, sandbox_id: str, *, limit: int, cursor: str | None) -> dict[str, Any]:
    return page(conn, sa.select(A).where(A.c.sandbox_id == sandbox_id), A.c.name, limit=limit, cursor=cursor,
                shape=lambda r: _action(_Row(r)).to_api())


def get_custom_action(conn: Connection, sandbox_id: str, name: str) -> Action:
    row = conn.execute(sa.select(A).where(A.c.sandbox_id == sandbox_id, A.c.name == name)).first()
    if row is None:
        raise not_found("custom marketing action", name)
    return _action(row)


def get_action(conn: Connection, sandbox_id: str, name: str, *, core_action: bool) -> Action:
    if core_action:
        found = core.ACTIONS_BY_NAME.get(name)
        if found is None:
            raise Problem(404, "not-found", "Not found", f"no core marketing action {name!r}")
        return found
    return get_custom_action(conn, sandbox_id, name)


def action_refs(conn: Connection, sandbox_id: str) -> dict[str, str]:
    """name → canonical ref of every marketing action the sandbox knows (names are unique across both)."""
    out = {a.name: a.ref for a in core.ACTIONS}
    for name in conn.execute(sa.select(A.c.name).where(A.c.sandbox_id == sandbox_id)).scalars():
        out[name] = action_ref(name, core=False)
    return out


def create_action(conn: Connection, *, sandbox_id: str, body: Any, actor: str, now: int) -> Action:
    cols = checks.check_custom_action(body)
    clash = checks.name_clash(cols["name"], action_refs(conn, sandbox_id))
    if clash:
        raise Problem(409, "conflict", "Conflict", f"marketing action {clash!r} exists; names are unique "
                      "ignoring case", [FieldError("/name", f"taken by {clash!r}")])
    conn.execute(A.insert().values(sandbox_id=sandbox_id, version=1, created_ms=now, updated_ms=now, **cols))
    action = get_custom_action(conn, sandbox_id, cols["name"])
    audit(conn, sandbox_id=sandbox_id, actor=actor, action="create", resource_type="marketingAction",
          resource_id=action.name, after=action.to_api())
    return action


def update_action(conn: Connection, *, sandbox_id: str, name: str, body: Any, actor: str, now: int,
                  if_match: str | None = None) -> Action:
    before = get_custom_action(conn, sandbox_id, name)
    check_if_match(if_match, before.version)
    cols = checks.check_custom_action(body, path_name=name)
    conn.execute(A.update().where(A.c.sandbox_id == sandbox_id, A.c.name == name)
                 .values(version=before.version + 1, updated_ms=now, description=cols["description"]))
    after = get_custom_action(conn, sandbox_id, name)
    audit(conn, sandbox_id=sandbox_id, actor=actor, action="update", resource_type="marketingAction",
          resource_id=name, before=before.to_api(), after=after.to_api())
    return after


def delete_action(conn: Connection, *, sandbox_id: str, name: str, actor: str, if_match: str | None = None) -> None:
    before = get_custom_action(conn, sandbox_id, name)
    check_if_match(if_match, before.version)
    users = [f"policy {p.id}" for p in custom_policies(conn, sandbox_id) if before.ref in p.action_refs]
    if users:
        raise in_use(f"marketing action {name!r}", users)
    conn.execute(A.delete().where(A.c.sandbox_id == sandbox_id, A.c.name == name))
    audit(conn, sandbox_id=sandbox_id, actor=actor, action="delete", resource_type="marketingAction",
          resource_id=name, before=before.to_api())


# -- policies ---------------------------------------------------------------------------------------

def _policy(row: Any) -> Policy:
    return Policy(row.id, row.name, row.description, row.status, tuple(row.action_refs), dict(row.deny),
                  core=False, version=row.version, created_ms=row.created_ms, updated_ms=row.updated_ms)


def custom_policies(conn: Connection, sandbox_id: str) -> list[Policy]:
    rows = conn.execute(sa.select(P).where(P.c.sandbox_id == sandbox_id).order_by(P.c.created_ms, P.c.id)).all()
    return [_policy(r) for r in rows]


def list_custom_policies(conn: Connection, sandbox_id: str, *, limit: int, cursor: str | None,
                         status: str | None = None) -> dict[str, Any]:
    stmt = sa.select(P).where(P.c.sandbox_id == sandbox_id)
    if status:
        stmt = stmt.where(P.c.status == status)
    return page(conn, stmt, P.c.id, limit=limit, cursor=cursor, shape=lambda r: _policy(_Row(r)).to_api())


def get_custom_policy(conn: Connection, sandbox_id: str, policy_id: str) -> Policy:
    row = conn.execute(sa.select(P).where(P.c.sandbox_id == sandbox_id, P.c.id == policy_id)).first()
    if row is None:
        raise not_found("custom policy", policy_id)
    return _policy(row)


def core_policies(conn: Connection, sandbox_id: str) -> list[Policy]:
    """The core policies with this sandbox's statuses (DISABLED unless the sandbox changed them)."""
    rows = {r.policy_id: r for r in conn.execute(sa.select(S).where(S.c.sandbox_id == sandbox_id))}
    out = []
    for p in core.POLICIES:
        r = rows.get(p["id"])
        out.append(Policy(p["id"], p["name"], p["description"], r.status if r else "DISABLED",
                          tuple(p["marketingActionRefs"]), p["deny"], core=True, version=r.version if r else 1,
                          updated_ms=r.updated_ms if r else 0))
    return out


def get_core_policy(conn: Connection, sandbox_id: str, policy_id: str) -> Policy:
    for p in core_policies(conn, sandbox_id):
        if p.id == policy_id:
            return p
    raise Problem(404, "not-found", "Not found", f"no core policy {policy_id!r}")


def all_policies(conn: Connection, sandbox_id: str) -> list[Policy]:
    return core_policies(conn, sandbox_id) + custom_policies(conn, sandbox_id)


def _status_verb(before: str, after: str) -> str:
    return "update" if before == after else {"ENABLED": "enable", "DISABLED": "disable"}.get(after, "update")


def set_core_status(conn: Connection, *, sandbox_id: str, policy_id: str, body: Any, actor: str, now: int,
                    if_match: str | None = None) -> Policy:
    before = get_core_policy(conn, sandbox_id, policy_id)
    check_if_match(if_match, before.version)
    status = checks.check_core_status_patch(body)
    done = conn.execute(S.update().where(S.c.sandbox_id == sandbox_id, S.c.policy_id == policy_id)
                        .values(status=status, version=S.c.version + 1, updated_ms=now))
    if done.rowcount == 0:
        conn.execute(S.insert().values(sandbox_id=sandbox_id, policy_id=policy_id, status=status, version=2,
                                       updated_ms=now))
    after = get_core_policy(conn, sandbox_id, policy_id)
    audit(conn, sandbox_id=sandbox_id, actor=actor, action=_status_verb(before.status, status),
          resource_type="corePolicy", resource_id=policy_id, before={"status": before.status},
          after={"status": after.status})
    return after


def _policy_context(conn: Connection, sandbox_id: str) -> dict[str, Any]:
    return {"labels": known_labels(conn, sandbox_id), "actions": action_refs(conn, sandbox_id)}


def create_policy(conn: Connection, *, sandbox_id: str, body: Any, actor: str, now: int) -> Policy:
    cols = checks.check_policy(body, **_policy_context(conn, sandbox_id))
    # Every policy starts disabled (a draft, when asked): enabling one is a deliberate second step.
    cols["status"] = "DRAFT" if cols.get("status") == "DRAFT" else "DISABLED"
    pid = "pol_" + secrets.token_hex(10)
    conn.execute(P.insert().values(id=pid, sandbox_id=sandbox_id, version=1, created_ms=now, updated_ms=now,
                                   **cols))
    policy = get_custom_policy(conn, sandbox_id, pid)
    audit(conn, sandbox_id=sandbox_id, actor=actor, action="create", resource_type="policy", resource_id=pid,
          after=policy.to_api())
    return policy


def update_policy(conn: Connection, *, sandbox_id: str, policy_id: str, body: Any, actor: str, now: int,
                  partial: bool, if_match: str | None = None) -> Policy:
    """Replace (PUT) or patch (PATCH: JSON Patch or merge patch) a custom policy."""
    before = get_custom_policy(conn, sandbox_id, policy_id)
    check_if_match(if_match, before.version)
    if partial:
        current = {"name": before.name, "description": before.description, "status": before.status,
                   "marketingActionRefs": list(before.action_refs), "deny": before.deny}
        body = apply(current, body)
    cols = checks.check_policy(body, **_policy_context(conn, sandbox_id))
    cols.setdefault("status", before.status)
    conn.execute(P.update().where(P.c.sandbox_id == sandbox_id, P.c.id == policy_id)
                 .values(version=before.version + 1, updated_ms=now, **cols))
    after = get_custom_policy(conn, sandbox_id, policy_id)
    audit(conn, sandbox_id=sandbox_id, actor=actor, action=_status_verb(before.status, after.status),
          resource_type="policy", resource_id=policy_id, before=before.to_api(), after=after.to_api())
    return after


def delete_policy(conn: Connection, *, sandbox_id: str, policy_id: str, actor: str,
                  if_match: str | None = None) -> None:
    before = get_custom_policy(conn, sandbox_id, policy_id)
    check_if_match(if_match, before.version)
    conn.execute(P.delete().where(P.c.sandbox_id == sandbox_id, P.c.id == policy_id))
    audit(conn, sandbox_id=sandbox_id, actor=actor, action="delete", resource_type="policy",
          resource_id=policy_id, before=before.to_api())


def resolve_action_ref(conn: Connection, sandbox_id: str, action: str) -> str:
    """The canonical ref of a marketing action given by name or ref, or a 404."""
    parsed = checks.parse_action_ref(action)
    ref = action_refs(conn, sandbox_id).get(parsed[1]) if parsed else None
    if parsed is None or ref is None or (parsed[0] and not ref.endswith(f"/{parsed[0]}/{parsed[1]}")):
        raise Problem(404, "not-found", "Not found", f"no marketing action {action!r} in this sandbox")
    return ref


def check_dataset_labels(conn: Connection, sandbox_id: str, labels: Any, where: str = "/labels") -> tuple[str, ...]:
    """Dataset labels checked against the sandbox's known labels, inside the caller's unit of work."""
    return checks.check_labels(labels, known_labels(conn, sandbox_id), where)
