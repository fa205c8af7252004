"""What ships with Wayline: the core labels, marketing actions and policies, as data.

Core pieces are the same in every sandbox and cannot be changed, except a core policy's status,
which each sandbox sets for itself (all start DISABLED).
"""

from __future__ import annotations

from typing import Any

from wayline.platform.governance.model import CONTRACT, IDENTITY, SENSITIVE, Action, Label, action_ref


def _l(name: str, friendly: str, description: str, category: str) -> Label:
    return Label(name, friendly, description, category)


LABELS: tuple[Label, ...] = (
    _l("C1", "Aggregated export only", "Data may leave Wayline only in aggregated form, without individual "
       "or device identifiers.", CONTRACT),
    _l("C2", "No third-party export", "Data may not be exported to a third party.", CONTRACT),
    _l("C3", "No combining with directly identifiable data", "Data may not be combined or used with directly "
       "identifiable information.", CONTRACT),
    _l("C4", "No targeting", "Data may not be used for any targeting, on site or across sites "
       "(implies C5, C6 and C7).", CONTRACT),
    _l("C5", "No cross-site interest targeting", "Data may not be used for interest-based targeting of content "
       "or ads across sites.", CONTRACT),
    _l("C6", "No on-site ad targeting", "Data may not be used to target ads on the organisation's own sites "
       "and apps.", CONTRACT),
    _l("C7", "No on-site content targeting", "Data may not be used to target content on the organisation's "
       "own sites and apps.", CONTRACT),
    _l("C8", "No measurement", "Data may not be used to measure the organisation's sites and apps.", CONTRACT),
    _l("C9", "No data science", "Data may not be used in data science workflows (models, training).", CONTRACT),
    _l("C10", "No stitched-identity activation", "Data may not be activated through a stitched identity; "
       "applied automatically to audiences whose merge policy uses the identity graph (pdg).", CONTRACT),
    _l("C11", "No segment match", "Data may not be shared with partners for segment matching.", CONTRACT),
    _l("C12", "No export", "Data may not be exported in any form.", CONTRACT),
    _l("I1", "Directly identifiable", "Data that identifies a specific person (name, email address, phone "
       "number, device id).", IDENTITY),
    _l("I2", "Indirectly identifiable", "Data that can identify a person when combined with other data.",
       IDENTITY),
    _l("S1", "Precise geolocation", "Location precise enough to find a person (latitude and longitude).",
       SENSITIVE),
    _l("S2", "Broad geofence", "Location as a broad area (a region or geofence).", SENSITIVE),
)
LABELS_BY_NAME = {lb.name: lb for lb in LABELS}

# A label set containing the key counts as containing the values too (applied transitively).
IMPLIES: dict[str, frozenset[str]] = {"C4": frozenset({"C5", "C6", "C7"})}


def _a(name: str, description: str) -> Action:
    return Action(name, description)


ACTIONS: tuple[Action, ...] = (
    _a("analytics", "Measure and analyse how people use the organisation's sites and apps."),
    _a("combineData", "Combine data with directly identifiable information."),
    _a("crossSiteTargeting", "Target content or ads at people across sites, based on their interests."),
    _a("dataScience", "Use data in data science workflows: exploration, models, training."),
    _a("emailTargeting", "Send targeted email to people."),
    _a("exportToThirdParty", "Export data to a party outside the organisation."),
    _a("onsiteAdvertising", "Target ads on the organisation's own sites and apps."),
    _a("onsitePersonalization", "Personalise content on the organisation's own sites and apps."),
    _a("segmentMatch", "Share audiences with partners to find people both know."),
    _a("singleIdentityPersonalization", "Personalise using one identity of a person, without the identity "
       "graph."),
)
ACTIONS_BY_NAME = {a.name: a for a in ACTIONS}


def _p(pid: str, name: str, description: str, action: str, operator: str, *labels: str) -> dict[str, Any]:
    return {"id": pid, "name": name, "description": description,
            "marketingActionRefs": [action_ref(action, core=True)],
            "deny": {"operator": operator, "operands": [{"label": x} for x in labels]}}


# Core policies: the reference's defaults, one per contract label that restricts a core action.
POLICIES: tuple[dict[str, Any], ...] = (
    _p("core-restrict-email-targeting", "Restrict email targeting",
       "Data labelled C4 (no targeting) may not be used for targeted email.", "emailTargeting", "OR", "C4"),
    _p("core-restrict-cross-site-targeting", "Restrict cross-site targeting",
       "Data labelled C5 (no cross-site interest targeting) may not be used for cross-site targeting.",
       "crossSiteTargeting", "OR", "C5"),
    _p("core-restrict-onsite-advertising", "Restrict onsite advertising",
       "Data labelled C6 (no on-site ad targeting) may not be used for onsite advertising.",
       "onsiteAdvertising", "OR", "C6"),
    _p("core-restrict-onsite-personalization", "Restrict onsite personalization",
       "Data labelled C7 (no on-site content targeting) may not be used for onsite personalization.",
       "onsitePersonalization", "OR", "C7"),
    _p("core-restrict-data-export", "Restrict data export",
       "Data labelled C2 (no third-party export) or C12 (no export) may not be exported to a third party.",
       "exportToThirdParty", "OR", "C2", "C12"),
    _p("core-restrict-combining-identifiable-data", "Restrict combining with identifiable data",
       "Data labelled C3 may not be combined with directly identifiable data.", "combineData", "OR", "C3"),
    _p("core-restrict-analytics", "Restrict analytics",
       "Data labelled C8 (no measurement) may not be used for analytics.", "analytics", "OR", "C8"),
    _p("core-restrict-data-science", "Restrict data science",
       "Data labelled C9 (no data science) may not be used for data science.", "dataScience", "OR", "C9"),
    _p("core-restrict-segment-match", "Restrict segment match",
       "Data labelled C11 (no segment match) may not be shared for segment matching.", "segmentMatch", "OR",
       "C11"),
)
POLICIES_BY_ID = {p["id"]: p for p in POLICIES}
