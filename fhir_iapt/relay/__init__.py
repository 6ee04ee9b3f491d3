"""The relay: a FastAPI service that converts, validates, stores and delivers (``fhir-iapt serve``).

``settings`` (frozen, from TOML + ``FHIR_IAPT_*``) -> ``app.create_app`` (routes in ``routes``,
intake in ``intake``) -> ``store.Outbox`` (SQLite) or ``postgres.PostgresOutbox`` (``[store]
url``) -> ``worker.DeliveryWorker`` -> ``destinations`` (one fitted FHIR client each).
``security``, ``audit`` and ``metrics`` serve the routes. See docs/relay.md.
"""

from __future__ import annotations

from fhir_iapt.relay.app import create_app
from fhir_iapt.relay.settings import RelaySettings, load_settings

__all__ = ["RelaySettings", "create_app", "load_settings"]
