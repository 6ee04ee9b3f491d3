"""The ``fhir-iapt`` command: thin callers of the library, one module per subcommand.

Subcommands are imported only when run, so ``fhir-iapt convert`` never pays for the relay's
imports (FastAPI, uvicorn) and ``fhir-iapt --help`` stays instant.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

#: name -> "module:attribute" of a click command.
COMMANDS: dict[str, str] = {
    "convert": "fhir_iapt.cli.convert:convert",
    "ledger": "fhir_iapt.cli.ledger:ledger",
    "mapping": "fhir_iapt.cli.mapping:mapping",
    "outcomes": "fhir_iapt.cli.outcomes:outcomes",
    "validate": "fhir_iapt.cli.validate:validate",
    "push": "fhir_iapt.cli.push:push",
    "report": "fhir_iapt.cli.report:report",
    "serve": "fhir_iapt.cli.serve:serve",
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        command: Any = getattr(importlib.import_module(module_name), attr)
        if not isinstance(command, click.Command):
            raise TypeError(f"{target} is not a click command")
        return command


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="fhir-iapt")
def main() -> None:
    """Convert clinic exports to UK Core FHIR referrals, IAPT outcomes back, and deliver them."""
