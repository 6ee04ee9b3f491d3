"""How the builders shape a Bundle: request strategy, ServiceRequest coding, id namespace.

:class:`BuildOptions` is a frozen value passed into every builder (and pickled to worker
processes), never read from the environment. The defaults are documented choices, not settled
clinical fact:

* ``service_code``: no SNOMED CT concept for "referral *to* NHS Talking Therapies / IAPT" was
  found (DOMAIN.md, status U), so the default is the project's own concept
  ``{CANONICAL_BASE}/CodeSystem/iapt-service#iapt-ltc-referral``. A site with an agreed code
  passes its own :class:`Coding`.
* ``service_category``: SNOMED CT 3457005 "Patient referral", the root concept of the FHIR
  ``referral-type`` value set (http://hl7.org/fhir/ValueSet/referral-type) and a member of the US
  Core ServiceRequest category value set; UK Core does not bind ``ServiceRequest.category`` for
  referrals (V2: secondary sources). ``()`` leaves the category out.
* ``request_method``: ``"conditional-create"`` sends ``POST <Type>`` with ``ifNoneExist`` on the
  business identifier, so sending the same bundle twice never duplicates anything; ``"put"``
  sends ``PUT <Type>/<id>`` (update-as-create, needs a server that allows client ids).
  Use one strategy per server: a resource first stored by conditional create has a server-given
  id, so a later PUT under our id stores a second copy (and vice versa). Conditional create
  needs the server to search ``identifier`` on every type we send (R4 defines it for all of
  them; sekmet-fhir 0.1.1, the test server, lacks it for QuestionnaireResponse).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Literal

from fhir_iapt.systems import CANONICAL_BASE, SNOMED, Coding

RequestMethod = Literal["conditional-create", "put"]

#: uuid5(NAMESPACE_URL, CANONICAL_BASE): the namespace of every resource id the project makes.
PROJECT_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, CANONICAL_BASE)


#: The default ServiceRequest.code (project concept; see the module docstring).
IAPT_LTC_REFERRAL = Coding(
    system=f"{CANONICAL_BASE}/CodeSystem/iapt-service",
    code="iapt-ltc-referral",
    display="Referral to NHS Talking Therapies integrated long-term conditions pathway",
)

#: The default ServiceRequest.category (SNOMED CT "Patient referral"; see the module docstring).
PATIENT_REFERRAL = Coding(system=SNOMED, code="3457005", display="Patient referral")


@dataclass(frozen=True, slots=True)
class BuildOptions:
    """Choices the builders leave to the deployment.

    ``id_namespace`` seeds every uuid5 resource id. Patient ids are derived from the NHS number
    (so one patient shares one id across records); with the public default namespace anyone who
    knows the scheme can test a guessed NHS number against an id, so a deployment that publishes
    ids beyond the receiving server may set its own, secret, namespace.
    """

    request_method: RequestMethod = "conditional-create"
    service_code: Coding = IAPT_LTC_REFERRAL
    service_category: tuple[Coding, ...] = (PATIENT_REFERRAL,)
    priority: Literal["routine", "urgent", "asap", "stat"] = "routine"
    id_namespace: uuid.UUID = PROJECT_NAMESPACE


DEFAULT_OPTIONS = BuildOptions()

__all__ = [
    "DEFAULT_OPTIONS",
    "IAPT_LTC_REFERRAL",
    "PATIENT_REFERRAL",
    "PROJECT_NAMESPACE",
    "BuildOptions",
    "Coding",
    "RequestMethod",
]
