"""`pip install audit-log-service` without extras: the verifier, the client and the
auditor's commands, and none of the server's packages."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("packaging")]

ROOT = Path(__file__).resolve().parents[2]
SERVER_ONLY = [
    "flask",
    "sqlalchemy",
    "gunicorn",
    "psycopg",
    "dependency_injector",
    "alembic",
    "prometheus_client",
    "pika",
]


def _run(*args: str | Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(arg) for arg in args], capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="module")
def core_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the project installed from a copy of its sources, no extras."""
    base = tmp_path_factory.mktemp("core-install")
    project = base / "project"
    project.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, project / name)
    shutil.copytree(
        ROOT / "src",
        project / "src",
        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"),
    )
    venv = base / "venv"
    made = _run(sys.executable, "-m", "venv", venv)
    assert made.returncode == 0, made.stderr
    installed = _run(venv / "bin" / "python", "-m", "pip", "install", "--quiet", project)
    assert installed.returncode == 0, installed.stderr[-3000:]
    return venv


def test_the_server_packages_are_not_installed(core_venv: Path) -> None:
    for module in SERVER_ONLY:
        found = _run(core_venv / "bin" / "python", "-c", f"import {module}")
        assert found.returncode != 0, f"{module} is installed without [server]"
        assert "ModuleNotFoundError" in found.stderr


def test_the_verifier_the_client_and_testing_import(core_venv: Path) -> None:
    modules = ["audit.verify", "audit.verify.monitor"]
    for name in ("client", "testing"):
        if (ROOT / "src" / "audit" / name).exists() or (
            ROOT / "src" / "audit" / f"{name}.py"
        ).exists():
            modules.append(f"audit.{name}")
        else:
            print(f"audit.{name} does not exist yet: its import is not checked")
    done = _run(core_venv / "bin" / "python", "-c", "; ".join(f"import {m}" for m in modules))
    assert done.returncode == 0, done.stderr


def test_the_auditor_commands_work(core_venv: Path) -> None:
    audit = core_venv / "bin" / "audit"
    for command in ("verify-proof", "verify-export", "monitor"):
        done = _run(audit, command, "--help")
        assert done.returncode == 0, done.stderr
        assert "Usage: audit " + command in done.stdout
    listing = _run(audit, "--help")
    assert listing.returncode == 0, listing.stderr
    assert "serve" in listing.stdout


@pytest.mark.parametrize("command", [["serve"], ["tokens", "list"], ["verify", "--tenant", "x"]])
def test_a_server_command_says_what_to_install(core_venv: Path, command: list[str]) -> None:
    done = _run(core_venv / "bin" / "audit", *command)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(f"Error: audit {command[0]} needs the server's packages")
    assert "pip install 'audit-log-service[server]'" in line
