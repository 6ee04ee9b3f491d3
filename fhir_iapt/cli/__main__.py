"""``python -m fhir_iapt.cli``: the same command as the ``fhir-iapt`` console script."""

from fhir_iapt.cli import main

main()
