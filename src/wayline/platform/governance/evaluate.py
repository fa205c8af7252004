"""Policy evaluation, pure: a marketing action and labels in, the violated policies out. No I/O.

A policy is violated when it is ENABLED (or DRAFT, when drafts are asked for), names the action,
and its deny expression is true of the label set closed under implication (C4 implies C5-C7).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from wayline.platform.governance.core import IMPLIES, LABELS_BY_NAME
from wayline.platform.governance.model import Policy

_CORE_ORDER = {name: i for i, name in enumerate(LABELS_BY_NAME)}


def label_order(name: str) -> tuple[int, str]:
    """Core labels in their shipped order (C1 … C12, I1, I2, S1, S2), then custom ones by name."""
    return _CORE_ORDER.get(name, len(_CORE_ORDER)), name


def sort_labels(labels: Iterable[str]) -> list[str]:
    return sorted(set(labels), key=label_order)


def closure(labels: Iterable[str], implies: Mapping[str, Iterable[str]] = IMPLIES) -> frozenset[str]:
    """The labels plus every label they imply, transitively."""
    out = set(labels)
    todo = list(out)
    while todo:
        for implied in implies.get(todo.pop(), ()):
            if implied not in out:
                out.add(implied)
                todo.append(implied)
    return frozenset(out)


def witness(expr: Mapping[str, Any], labels: frozenset[str]) -> frozenset[str] | None:
    """The labels that make a (checked) deny expression true, or None when it is false."""
    if "label" in expr:
        return frozenset({expr["label"]}) if expr["label"] in labels else None
    found = [witness(op, labels) for op in expr["operands"]]
    if expr["operator"] == "AND":
        if any(w is None for w in found):
            return None
        return frozenset().union(*found)  # type: ignore[arg-type]
    true = [w for w in found if w is not None]
    return frozenset().union(*true) if true else None


def holds(expr: Mapping[str, Any], labels: frozenset[str]) -> bool:
    """Whether a deny expression is true of a label set (already closed under implication)."""
    return witness(expr, labels) is not None


@dataclass(frozen=True)
class Discovered:
    """The labels found on one entity named in an evaluation request."""

    entity_type: str  # dataSet | field | any type a caller plugs in (segment)
    entity_id: str
    labels: frozenset[str]
    path: str | None = None
    own: frozenset[str] | None = None  # a dataset's own labels (without its fields')
    fields: tuple[tuple[str, frozenset[str]], ...] = ()  # a dataset's labelled fields

    def to_api(self) -> dict[str, Any]:
        out: dict[str, Any] = {"entityType": self.entity_type, "entityId": self.entity_id}
        if self.path is not None:
            out["path"] = self.path
        out["labels"] = sort_labels(self.labels)
        if self.own is not None:
            out["dataSetLabels"] = {"dataSet": {"labels": sort_labels(self.own)},
                                    "fields": [{"path": p, "labels": sort_labels(ls)} for p, ls in self.fields]}
        return out


@dataclass(frozen=True)
class Violation:
    policy: Policy
    matched: frozenset[str]  # the labels that made its deny expression true

    def to_api(self) -> dict[str, Any]:
        return {**self.policy.summary(), "matchedLabels": sort_labels(self.matched)}


@dataclass(frozen=True)
class Evaluation:
    action_ref: str
    dule_labels: frozenset[str]  # closed under implication
    violations: tuple[Violation, ...]
    discovered: tuple[Discovered, ...] = ()

    @property
    def allowed(self) -> bool:
        return not self.violations

    @property
    def violated_policies(self) -> list[Policy]:
        return [v.policy for v in self.violations]

    def to_api(self) -> dict[str, Any]:
        return {"marketingActionRef": self.action_ref, "duleLabels": sort_labels(self.dule_labels),
                "discoveredLabels": [d.to_api() for d in self.discovered],
                "violatedPolicies": [v.to_api() for v in self.violations]}


def applies(policy: Policy, action_ref: str, *, include_draft: bool = False) -> bool:
    """Whether the policy takes part in evaluating the action."""
    live = policy.status == "ENABLED" or (include_draft and policy.status == "DRAFT")
    return live and action_ref in policy.action_refs


def evaluate(action_ref: str, labels: Iterable[str], policies: Iterable[Policy], *, include_draft: bool = False,
             discovered: Iterable[Discovered] = ()) -> Evaluation:
    """Evaluate a marketing action against labels (and the labels of the discovered entities)."""
    found = tuple(discovered)
    closed = closure([*labels, *(x for d in found for x in d.labels)])
    violations = []
    for p in policies:
        if applies(p, action_ref, include_draft=include_draft):
            w = witness(p.deny, closed)
            if w is not None:
                violations.append(Violation(p, w))
    return Evaluation(action_ref, closed, tuple(violations), found)
