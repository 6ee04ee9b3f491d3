"""README's commands and code run as written (FastAPI-style: documentation examples are tests)."""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from fhir_iapt.cli import main

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.DOTALL)


def _section(title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## )", README, flags=re.DOTALL | re.M)
    assert match, f"README has no '## {title}' section"
    return match.group(1)


def _fhir_iapt_commands(block: str) -> list[list[str]]:
    """The `.venv/bin/fhir-iapt ...` steps of a `a && b && c` one-liner, as argument lists."""
    steps = [s.strip() for s in block.replace("\\\n", " ").split("&&")]
    return [shlex.split(s)[1:] for s in steps if s.startswith(".venv/bin/fhir-iapt ")]


def test_quickstart_has_exactly_two_commands_install_run_and_install_test() -> None:
    """The quickstart is two one-line commands: install + main job; install + whole suite."""
    blocks = re.findall(r"```sh\n(.*?)```", _section("Quickstart"), flags=re.DOTALL)
    assert len(blocks) == 2
    run, test = (b.strip() for b in blocks)
    assert "\n" not in run
    assert "\n" not in test
    assert "pip install" in run
    assert "fhir-iapt convert" in run
    assert "pip install" in test
    assert "'.[test]'" in test
    assert test.endswith(".venv/bin/pytest")


def test_ci_runs_the_readme_test_command() -> None:
    """.ci/run calls the same pytest the README's test command runs."""
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "pip install --quiet -e '.[test]'" in ci
    assert re.search(r"^\.venv/bin/pytest$", ci, flags=re.M)


def test_quickstart_main_job_converts_every_bundled_example(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each fhir-iapt step of the quickstart exits 0 and writes bundles, rejects and summary."""
    block = re.findall(r"```sh\n(.*?)```", _section("Quickstart"), flags=re.DOTALL)[0]
    commands = _fhir_iapt_commands(block)
    assert len(commands) >= 3
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    for args in commands:
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, (args, result.output)
        out = Path(args[args.index("--out") + 1])
        summary = orjson.loads((out / "summary.json").read_bytes())
        assert summary["converted"] > 0
        assert summary["rejected_total"] == 0
        assert (out / "bundles.ndjson").stat().st_size > 0


def test_library_example_runs(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The Python example under 'Library' runs as written from the repository root."""
    code = re.findall(r"```python\n(.*?)```", _section("Library"), flags=re.DOTALL)
    assert len(code) == 1
    monkeypatch.chdir(ROOT)
    exec(compile(code[0], "README.md#library", "exec"), {})  # noqa: S102 - our own README
    printed = capsys.readouterr().out
    assert "not-referred" in printed


def test_relay_config_in_the_readme_is_the_tested_example_file() -> None:
    """The README's complete relay config is examples/relay.toml, which the relay tests load."""
    blocks = re.findall(r"```toml\n(.*?)```", README, flags=re.DOTALL)
    assert blocks == [(ROOT / "examples" / "relay.toml").read_text(encoding="utf-8")]
