"""``fhir-iapt serve``: a configuration mistake is a located message and exit 2, never a
traceback, and is reported before the server starts."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
_TIMEOUT = 120


def _readme_serve_command() -> list[str]:
    """The README's ``fhir-iapt serve --config ...`` line, as arguments after ``fhir-iapt``."""
    lines = re.findall(r"^fhir-iapt serve --config .*$", README, flags=re.M)
    assert lines, "README shows no 'fhir-iapt serve --config' command"
    return shlex.split(lines[0].split("#")[0])[1:]


def _serve(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.upper().startswith("FHIR_IAPT_")}
    return subprocess.run(
        [sys.executable, "-c", "from fhir_iapt.cli import main; main()", *args],
        cwd=cwd,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=_TIMEOUT,
        check=False,
    )


def _examples(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    return tmp_path


def test_readme_serve_command_names_the_missing_files(tmp_path: Path) -> None:
    """The README's serve command on examples/relay.toml: exit 2 naming relay.toml and each
    missing file's key (the example key and CA files are placeholders), no traceback, and
    nothing started (no outbox written)."""
    cwd = _examples(tmp_path)
    result = _serve(_readme_serve_command(), cwd, FHIR_IAPT_SERVER__PORT="0")
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "Traceback" not in output
    assert "relay.toml" in output
    assert "destinations.diabetes.auth.private_key_file" in output
    assert "destinations.respiratory.ca_bundle" in output
    assert not (cwd / "examples" / "relay-data").exists()


def test_unusable_key_file_is_reported_before_start(tmp_path: Path) -> None:
    """A key file that exists but is not a PEM key: exit 2 naming file and key, no traceback."""
    config = tmp_path / "relay.toml"
    (tmp_path / "key.pem").write_text("-----BEGIN PRIVATE KEY-----\nnope\n")
    config.write_text(
        "[server]\nport = 0\n[destinations.iapt]\n"
        'base_url = "https://iapt.example.nhs.uk/fhir"\n[destinations.iapt.auth]\n'
        'kind = "smart_backend_services"\ntoken_url = "https://iapt.example.nhs.uk/token"\n'
        'client_id = "relay"\nkid = "k1"\nprivate_key_file = "key.pem"\n'
    )
    result = _serve(["serve", "--config", str(config)], tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "Traceback" not in output
    assert "relay.toml" in output
    assert "destinations.iapt.auth.private_key_file" in output


def test_serve_without_config_says_none_was_given(tmp_path: Path) -> None:
    """No --config and no FHIR_IAPT_* variables: exit 2 saying no configuration was given."""
    result = _serve(["serve"], tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "Traceback" not in output
    assert "no relay configuration was given" in output
    assert "--config" in output


def test_environment_only_mistake_says_there_is_no_file(tmp_path: Path) -> None:
    """Without --config, a mistake in FHIR_IAPT_* settings says no settings file was given."""
    result = _serve(["serve"], tmp_path, FHIR_IAPT_SERVER__PORT="0")
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "Traceback" not in output
    assert "no settings file" in output
    assert "referrals.destination" in output
