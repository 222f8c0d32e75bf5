"""The original service's own curl lines against a real `audit serve`."""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("server")]


def curl(*args: str) -> str:
    done = subprocess.run(
        ["curl", "-s", "--max-time", "20", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return done.stdout


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs the curl command")
def test_the_seeds_curl_lines_work_against_the_server(start_server: Any) -> None:
    server = start_server()
    auth = f"Authorization: Bearer {server.bootstrap_token}"
    saved = curl(
        "-H", auth, "-X", "POST", "-d", "user=alice&action=login", f"{server.url}/save_logs"
    )
    assert saved == "Logs successfully saved to database!"
    curl("-H", auth, "-X", "POST", "-d", "user=bob&action=logout", f"{server.url}/save_logs")
    found = curl("-H", auth, f"{server.url}/get_logs?user=alice").splitlines()
    assert len(found) == 1
    assert found[0].startswith("action:login,user:alice,id:")
    assert '"valid":true' in curl("-H", auth, f"{server.url}/v1/verify")
    refused = curl("-X", "POST", "-d", "user=alice", f"{server.url}/save_logs")
    assert '"code":"unauthorized"' in refused
