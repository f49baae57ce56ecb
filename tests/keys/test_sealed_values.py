"""Key values at rest: found by an HMAC digest, kept only encrypted, worthless in a dump."""

import io
import os
import shutil
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from chq.dotenv import complete, fresh_secrets
from keys import sealing, services
from keys.access import Reason, decide, process_cache
from keys.models import ApiKey
from tests.api_calls import post

ROOT = Path(__file__).resolve().parents[2]


def spellings(value: uuid.UUID) -> list[str]:
    """Every way a value could sit in a text dump (compared lower-cased)."""
    return [str(value), value.hex]


def assert_no_value_in(data: bytes, values: list[uuid.UUID]) -> None:
    text = data.decode("latin-1").lower()
    for value in values:
        for spelled in spellings(value):
            assert spelled not in text, f"a key value ({spelled[-4:]}) is in the dump"
        assert value.bytes not in data, "a key value's 16 bytes are in the dump"


@pytest.fixture
def rolled_keys(make_key):
    """Two keys, one of them rolled (so an old value is kept too); returns every value."""
    kept, rolled = make_key(allowed_for_all=True), make_key(allowed_for_all=True)
    old = rolled.value
    rolled = services.api_key_roll(key=rolled, grace_until=timezone.now() + timedelta(hours=1))
    return [kept.value, rolled.value, old]


# --- what is stored --------------------------------------------------------------------


def test_a_key_is_stored_as_digest_and_ciphertext_and_read_back_as_its_value(make_key):
    key = make_key()
    stored = ApiKey.objects.values("value_digest", "value_sealed").get(pk=key.pk)
    assert stored["value_digest"] == sealing.digest(key.value)
    assert len(stored["value_digest"]) == sealing.DIGEST_LENGTH
    assert str(key.value) not in stored["value_sealed"]
    assert ApiKey.objects.get(pk=key.pk).value == key.value


def test_the_digest_depends_on_the_secret():
    value = uuid.uuid4()
    with override_settings(KEYS_LOOKUP_SECRET="one"):
        first = sealing.digest(value)
    with override_settings(KEYS_LOOKUP_SECRET="two"):
        assert sealing.digest(value) != first


def test_a_value_encrypted_under_another_key_cannot_be_read():
    token = sealing.seal(uuid.uuid4())
    other = override_settings(KEYS_ENCRYPTION_KEYS=[Fernet.generate_key().decode()])
    with other, pytest.raises(sealing.SealError, match="cannot be decrypted"):
        sealing.unseal(token)


def test_keys_made_in_bulk_get_values_too(db):
    ApiKey.objects.bulk_create([ApiKey(description="a"), ApiKey(description="b")])
    values = [key.value for key in ApiKey.objects.all()]
    assert all(isinstance(v, uuid.UUID) for v in values)
    assert len(set(values)) == 2


def test_lookup_by_value_or_old_value(rolled_keys):
    _, new, old = rolled_keys
    assert ApiKey.objects.with_value(old).get() == ApiKey.objects.with_value(new).get()
    assert not ApiKey.objects.with_value(old, or_previous=False).exists()
    assert not ApiKey.objects.with_value(uuid.uuid4()).exists()


def test_the_stored_strings_do_not_let_a_call_through(client, rolled_keys):
    for row in ApiKey.objects.values("value_digest", "value_sealed", "previous_digest", "previous_sealed"):
        for stored in filter(None, row.values()):
            response = post("/chqapi/export/inventory", stored, client=client)
            assert response.status_code == 401


def test_without_the_lookup_secret_a_true_value_is_not_found(rolled_keys):
    kept = rolled_keys[0]
    assert decide(kept, direction="export", api_id="inventory").allowed
    process_cache.clear()  # what this process remembers was looked up under the real secret
    with override_settings(KEYS_LOOKUP_SECRET="guessed"):
        assert decide(kept, direction="export", api_id="inventory").reason == Reason.UNKNOWN_KEY


# --- dumps ---------------------------------------------------------------------------


def test_dumpdata_holds_no_key_value(rolled_keys):
    out = io.StringIO()
    call_command("dumpdata", "keys", stdout=out)
    assert '"value_sealed"' in out.getvalue()  # the keys are in the dump, only not their values
    assert_no_value_in(out.getvalue().encode(), rolled_keys)


def _scratch_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PYTEST"))}
    return env | fresh_secrets() | {"DEBUG": "false", "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}"}


def _manage(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def _keys_made_by_commands(env: dict[str, str]) -> list[uuid.UUID]:
    """Three keys, the first rolled; every value, including the old one (it keeps working, so it is stored)."""
    _manage(env, "migrate", "--no-input", "-v", "0")
    values = [uuid.UUID(_manage(env, "create_api_key", "--description", "dumped", "--all", "--quiet")) for _ in "abc"]
    values.append(uuid.UUID(_manage(env, "roll_api_key", str(values[0]), "--grace", "7d", "--quiet")))
    return values


def test_the_raw_sqlite_file_holds_no_key_value(tmp_path):
    env = _scratch_env(tmp_path)
    values = _keys_made_by_commands(env)
    files = [p for p in tmp_path.iterdir() if p.name.startswith("db.sqlite3")]
    assert files
    for path in files:  # the database and any journal or write-ahead log beside it
        assert_no_value_in(path.read_bytes(), values)


def test_values_from_before_the_upgrade_are_sealed_and_the_file_forgets_them(tmp_path):
    """Keys made before values were sealed: the migration seals them and then rewrites
    the file, so the old clear column does not linger in its free pages."""
    env = _scratch_env(tmp_path)
    _manage(env, "migrate", "keys", "0009", "--no-input", "-v", "0")
    values = [uuid.uuid4() for _ in range(3)]
    insert = (
        "import uuid; from django.db import connection; c = connection.cursor(); "
        + "; ".join(
            "c.execute(\"INSERT INTO keys_apikey (value, description, is_active, allowed_for_all, logged_for_all,"
            " created_at, updated_at, version) VALUES (%s, 'old', 1, 1, 0, '2026-01-01', '2026-01-01', 1)\","
            f" ['{v.hex}'])"
            for v in values
        )
    )
    _manage(env, "shell", "-c", insert)
    assert values[0].hex.encode() in (tmp_path / "db.sqlite3").read_bytes()  # stored in the clear, as before
    _manage(env, "migrate", "--no-input", "-v", "0")
    assert_no_value_in((tmp_path / "db.sqlite3").read_bytes(), values)
    assert _manage(env, "check_api_key", str(values[1]), "--type", "export:inventory").startswith("allowed")


def test_pg_dump_holds_no_key_value(tmp_path, scratch_postgres):
    pg_dump = shutil.which("pg_dump") or next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_dump"))), None)
    assert pg_dump, "a PostgreSQL server is configured but pg_dump is not installed"
    env = _scratch_env(tmp_path) | {"DATABASE_URL": scratch_postgres}
    values = _keys_made_by_commands(env)
    dump = subprocess.run([str(pg_dump), scratch_postgres], capture_output=True, check=True, timeout=120).stdout
    assert b"value_sealed" in dump
    assert_no_value_in(dump, values)
    assert _manage(env, "check_api_key", str(values[0]), "--type", "export:inventory").startswith("allowed")


# --- migration, both ways ------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_migration_seals_existing_values_and_reverses():
    executor = MigrationExecutor(connection)
    executor.migrate([("keys", "0009_key_roll")])
    old_state = executor.loader.project_state(("keys", "0009_key_roll")).apps
    OldKey = old_state.get_model("keys", "ApiKey")
    value, previous = uuid.uuid4(), uuid.uuid4()
    OldKey.objects.create(value=value, previous_value=previous, previous_until=timezone.now(), description="x")
    OldKey.objects.create(value=uuid.uuid4(), description="never rolled")

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes("keys"))
    key = ApiKey.objects.get(description="x")
    assert (key.value, key.previous_value) == (value, previous)
    assert key.value_digest == sealing.digest(value)
    assert ApiKey.objects.get(description="never rolled").previous_digest is None

    executor = MigrationExecutor(connection)
    executor.migrate([("keys", "0009_key_roll")])
    OldKey = executor.loader.project_state(("keys", "0009_key_roll")).apps.get_model("keys", "ApiKey")
    assert OldKey.objects.values_list("value", "previous_value").get(description="x") == (value, previous)

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes("keys"))


# --- rotating the encryption key -----------------------------------------------------------


def rotate() -> str:
    out = io.StringIO()
    call_command("rotate_key_encryption", stdout=out)
    return out.getvalue().strip()


def test_rotation_reencrypts_under_the_first_key_and_reports_counts(settings, rolled_keys):
    old_key = settings.KEYS_ENCRYPTION_KEYS[0]
    new_key = Fernet.generate_key().decode()
    settings.KEYS_ENCRYPTION_KEYS = [new_key, old_key]
    assert rotate() == "2 API keys: 3 values re-encrypted under the first key, 0 already were."
    assert rotate() == "2 API keys: 0 values re-encrypted under the first key, 3 already were."
    settings.KEYS_ENCRYPTION_KEYS = [new_key]  # the old key can go now
    assert sorted(str(v) for v in rolled_keys) == sorted(
        str(v) for key in ApiKey.objects.all() for v in (key.value, key.previous_value) if v
    )
    # Lookups never depended on the encryption key: calls go on working throughout.
    assert decide(rolled_keys[2], direction="export", api_id="inventory").allowed


def test_rotation_with_a_value_no_key_opens_changes_nothing(settings, rolled_keys):
    stranger = Fernet(Fernet.generate_key())
    ApiKey.objects.filter(pk=ApiKey.objects.with_value(rolled_keys[0]).get().pk).update(
        value_sealed=stranger.encrypt(b"x" * 16).decode()
    )
    settings.KEYS_ENCRYPTION_KEYS = [Fernet.generate_key().decode(), *settings.KEYS_ENCRYPTION_KEYS]
    before = list(ApiKey.objects.values_list("value_sealed", "previous_sealed"))
    with pytest.raises(CommandError, match=r"cannot be decrypted.*Nothing was changed"):
        rotate()
    assert list(ApiKey.objects.values_list("value_sealed", "previous_sealed")) == before


# --- the development .env --------------------------------------------------------------------


def test_dotenv_writes_every_secret_and_completes_an_older_file(tmp_path):
    path = tmp_path / ".env"
    assert complete(path) == ["SECRET_KEY", "KEYS_LOOKUP_SECRET", "KEYS_ENCRYPTION_KEYS"]
    assert path.read_text().startswith("DEBUG=true\n")
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert complete(path) == []

    older = tmp_path / "older.env"
    older.write_text("DEBUG=true\nSECRET_KEY=kept")  # no newline at the end
    assert complete(older) == ["KEYS_LOOKUP_SECRET", "KEYS_ENCRYPTION_KEYS"]
    lines = older.read_text().splitlines()
    assert lines[:2] == ["DEBUG=true", "SECRET_KEY=kept"]
    assert Fernet(lines[3].partition("=")[2])  # a usable Fernet key


def test_rotation_reads_every_key_in_one_query_however_many(settings, make_key):
    def queries_for_rotation() -> int:
        settings.KEYS_ENCRYPTION_KEYS = [Fernet.generate_key().decode(), *settings.KEYS_ENCRYPTION_KEYS]
        with CaptureQueriesContext(connection) as run:
            services.key_encryption_rotate()
        return len(run.captured_queries)

    rolled = make_key()
    services.api_key_roll(key=rolled, grace_until=timezone.now() + timedelta(hours=1))
    few = queries_for_rotation()
    for _ in range(5):
        services.api_key_roll(key=make_key(), grace_until=timezone.now() + timedelta(hours=1))
    assert queries_for_rotation() == few
