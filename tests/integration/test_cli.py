"""The `audit` command line, run as a user runs it: a separate process."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest
from tests.integration.server.support import run_audit

pytestmark = pytest.mark.slow


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'cli.db'}"


def _create_token(db: str, *scopes: str, tenant: str = "acme") -> dict[str, object]:
    args = ["tokens", "create", "--database-url", db, "--tenant", tenant, "--json"]
    for scope in scopes:
        args += ["--scope", scope]
    done = run_audit(*args)
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def test_help_works_everywhere() -> None:
    for args in (
        [],
        ["serve"],
        ["tokens"],
        ["tokens", "create"],
        ["tokens", "list"],
        ["tokens", "revoke"],
        ["verify"],
        ["export"],
    ):
        done = run_audit(*args, "--help")
        assert done.returncode == 0, (args, done.stderr)
        assert "Usage:" in done.stdout


def test_tokens_create_list_and_revoke(db: str, tmp_path: Path) -> None:
    made = _create_token(db, "events:read", "events:write")
    # The command started the `q` indexer by writing: stopped at exit, not killed halfway
    # through making its file.
    assert not [p.name for p in tmp_path.iterdir() if ".new" in p.name]
    assert str(made["token"]).startswith("als_")
    assert made["tenant"] == "acme"
    assert made["scopes"] == ["events:read", "events:write"]

    listed = run_audit("tokens", "list", "--database-url", db, "--json")
    tokens = json.loads(listed.stdout)["tokens"]
    assert [t["id"] for t in tokens] == [made["id"]]
    assert "token" not in tokens[0]
    assert str(made["token"]) not in listed.stdout

    revoked = run_audit("tokens", "revoke", "--database-url", db, str(made["id"]))
    assert revoked.returncode == 0
    again = json.loads(run_audit("tokens", "list", "--database-url", db, "--json").stdout)
    assert again["tokens"][0]["revoked_at"] is not None


def test_expiring_token_and_bad_input_are_one_clear_sentence(db: str) -> None:
    made = run_audit(
        "tokens",
        "create",
        "--database-url",
        db,
        "--tenant",
        "acme",
        "--scope",
        "events:read",
        "--expires-in",
        "30d",
        "--json",
    )
    assert json.loads(made.stdout)["expires_at"] is not None
    create_acme = ["tokens", "create", "--database-url", db, "--tenant", "acme"]
    create_acme += ["--scope", "events:read"]
    for args in (
        ["tokens", "create", "--database-url", db, "--tenant", "acme", "--scope", "nope"],
        ["tokens", "create", "--database-url", db, "--tenant", "a b", "--scope", "events:read"],
        [
            "tokens",
            "create",
            "--database-url",
            db,
            "--tenant",
            "acme",
            "--scope",
            "events:read",
            "--expires-in",
            "soon",
        ],
        ["tokens", "revoke", "--database-url", db, "tok_missing"],
        [*create_acme, "--expires-in", "99999999999d"],
        [*create_acme, "--expires-in", "3000000d"],
        ["export", "--database-url", db, "--tenant", "acme", "--since", "yesterday"],
        ["tokens", "list", "--database-url", "postgresql://nobody@127.0.0.1:1/none"],
    ):
        done = run_audit(*args)
        assert done.returncode != 0, args
        assert "Traceback" not in done.stderr + done.stdout
        # click's own usage lines may come first; the error itself is one line, a
        # sentence rather than an exception's class.
        last = done.stderr.strip().splitlines()[-1]
        assert last.startswith("Error: "), done.stderr
        assert not re.match(r"Error: \w+(Error|Exception):", last), last


def test_reading_commands_refuse_a_missing_sqlite_file(tmp_path: Path) -> None:
    missing = tmp_path / "nothing-here.db"
    for args in (
        ["verify"],
        ["tokens", "list"],
        ["export", "--tenant", "acme"],
        ["tokens", "revoke", "tok_x"],  # a file not there holds no token to revoke
    ):
        done = run_audit(*args, "--database-url", f"sqlite:///{missing}")
        assert done.returncode != 0
        assert "no database" in done.stderr
        assert "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_database_url_that_cannot_serve_is_one_sentence_naming_why(tmp_path: Path) -> None:
    text_file = tmp_path / "notes.txt"
    text_file.write_text("not a database\n" * 100)
    for url, said in (
        ("garbage", "the database URL is not a URL"),
        ("mysql://someone:secret@db/audit", "unsupported database URL scheme 'mysql'"),
        (f"sqlite:///{text_file}", "the file named as the SQLite database is not one"),
        (f"sqlite:///{tmp_path}", "the SQLite database file cannot be opened"),
    ):
        done = run_audit("verify", "--database-url", url)
        assert done.returncode == 1, url
        assert done.stderr.strip() == f"Error: {said}" or done.stderr.strip().startswith(
            f"Error: {said}:"
        ), done.stderr
        assert "secret" not in done.stderr


def test_export_and_verify(db: str, tmp_path: Path) -> None:
    from audit.container import build_container
    from audit.domain.validation import parse_batch
    from audit.settings import Settings

    _create_token(db, "events:read")  # creates the schema
    nothing = run_audit("verify", "--database-url", db)
    assert nothing.returncode == 0
    assert nothing.stdout.strip() == "no tenant has events yet: nothing to verify"
    container = build_container(Settings(database_url=db))
    container.record_events()(
        "acme",
        parse_batch(
            [
                {
                    "id": f"e{n}",
                    "action": "doc.read" if n % 2 else "doc.update",
                    "actor": {"id": "u1", "name": "Zoë"},
                    "metadata": {"n": n},
                }
                for n in range(25)
            ]
        ),
    )
    container.engine().dispose()

    out = tmp_path / "export.ndjson"
    done = run_audit("export", "--database-url", db, "--tenant", "acme", "-o", str(out))
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [e["seq"] for e in lines] == list(range(1, 26))
    assert out.stat().st_mode & 0o777 == 0o600  # the log's content, as the log's files
    assert lines[0]["actor"]["name"] == "Zoë"

    filtered = run_audit(
        "export",
        "--database-url",
        db,
        "--tenant",
        "acme",
        "--format",
        "csv",
        "--action",
        "doc.read",
    )
    rows = list(csv.DictReader(io.StringIO(filtered.stdout)))
    assert len(rows) == 12
    assert all(r["action"] == "doc.read" for r in rows)
    assert json.loads(rows[0]["actor"]) == {"id": "u1", "type": None, "name": "Zoë"}

    verified = run_audit("verify", "--database-url", db)
    assert verified.returncode == 0
    assert "acme: valid, 25 events checked" in verified.stdout


def test_checkpoint_signs_every_tenant_and_keeps_them_in_the_folder(
    db: str, tmp_path: Path
) -> None:
    from audit.container import build_container
    from audit.domain.validation import parse_batch
    from audit.settings import Settings
    from audit.verify import open_checkpoint, parse_vkey

    _create_token(db, "events:read")  # creates the schema
    key_file = tmp_path / "signing.key"
    folder = tmp_path / "checkpoints"
    container = build_container(
        Settings(database_url=db, log_origin="example.org/audit", signing_key_file=str(key_file))
    )
    for tenant, count in (("acme", 3), ("globex", 5)):
        container.record_events()(
            tenant,
            parse_batch([{"action": "a.b", "actor": {"id": "u"}} for _ in range(count)]),
        )
    verifier = parse_vkey(container.signer().vkey)
    container.engine().dispose()

    env = {
        "AUDIT_LOG_ORIGIN": "example.org/audit",
        "AUDIT_SIGNING_KEY_FILE": str(key_file),
        "AUDIT_CHECKPOINT_DIR": str(folder),
    }
    missing = run_audit(
        "checkpoint", "--database-url", db, env={**env, "AUDIT_SIGNING_KEY_FILE": "nope.key"}
    )
    assert missing.returncode == 1
    assert "no signing key at nope.key" in missing.stderr
    done = run_audit("checkpoint", "--database-url", db, env=env)
    assert done.returncode == 0, done.stderr
    for tenant, count in (("acme", 3), ("globex", 5)):
        note = (folder / f"{tenant}.checkpoint").read_text()
        assert note in done.stdout
        checkpoint = open_checkpoint(note, verifier, f"example.org/audit/{tenant}")
        assert checkpoint.size == count


def test_a_bad_setting_is_one_sentence(tmp_path: Path) -> None:
    done = run_audit(
        "verify",
        "--database-url",
        f"sqlite:///{tmp_path / 'x.db'}",
        env={"AUDIT_MAX_BODY_BYTES": "lots"},
    )
    assert done.returncode == 1
    assert done.stderr.strip() == "Error: AUDIT_MAX_BODY_BYTES='lots' is not a valid value"


def test_a_signing_key_that_cannot_be_read_is_one_sentence(tmp_path: Path) -> None:
    done = run_audit(
        "serve",
        "--database-url",
        f"sqlite:///{tmp_path / 'k.db'}",
        "--port",
        "0",
        env={"AUDIT_SIGNING_KEY": "not base64!"},
    )
    assert done.returncode == 1
    assert done.stderr.strip() == "Error: AUDIT_SIGNING_KEY is not base64"
    assert "als_" not in done.stdout
