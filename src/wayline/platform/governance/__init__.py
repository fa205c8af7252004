"""Data governance: data-usage labels, marketing actions, policies and their evaluation.

`core` holds what ships with Wayline (as data), `evaluate` is the pure evaluation, `checks` the
pure request checks, `fields` the pure field-path rules, `store` the SQL, `service` the facade other
concepts call (segments, journeys) and `api` the `/dulepolicy` routes.
"""
