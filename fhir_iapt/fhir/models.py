"""Typed access to what the adapter built, as fhir.resources models (pydantic, R4B).

The builders make plain dicts (fast, deterministic, JSON-ready); an integrator who wants typed
attribute access and pydantic validation can turn any of them into a ``fhir.resources`` model::

    from fhir_iapt import as_model
    bundle = as_model(result.bundle)          # fhir.resources.R4B.bundle.Bundle
    patient = bundle.entry[0].resource        # ...R4B.patient.Patient
    patient.identifier[0].value

fhir.resources ships R4B and R5 models, not R4: for every resource type and element the adapter
emits, R4B has the same fields as R4 (the test suite parses every golden bundle and checks the
model dumps back to the same JSON, dateTimes aside: the model writes ``+00:00`` as ``Z``). This
is a convenience for reading results; conformance is checked by :mod:`fhir_iapt.fhir.validate`
against R4 and the project's profiles.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def as_model(resource: Mapping[str, Any]) -> Any:
    """The ``fhir.resources`` R4B model of a resource dict (raises pydantic's ValidationError).

    Typed as ``Any`` because fhir.resources ships no type information.
    """
    from fhir.resources.R4B import get_fhir_model_class

    model = get_fhir_model_class(str(resource["resourceType"]))
    return model.model_validate(dict(resource))


__all__ = ["as_model"]
