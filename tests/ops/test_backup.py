"""Backup then restore into an empty database and data folder, on SQLite and PostgreSQL;
tampered, incomplete or unsafe archives are refused before anything is written."""

from __future__ import annotations

import hashlib
import io
import json
import secrets
import sqlite3
import tarfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from sqlalchemy import make_url, select, text

from appliance.audit import verify_chain
from appliance.cli import main
from appliance.config import AppConfig, load_config
from appliance.db import create_db_engine, create_session_factory, head_revision, migrate_database
from appliance.errors import Conflict, InvalidInput
from appliance.models import (
    AuditEvent,
    Contract,
    ContractState,
    DocumentVersion,
    Routing,
    User,
    UserSource,
)
from appliance.ops import create_backup, restore_backup
from appliance.storage import FilesystemBlobStore
from tests.fakes.clock import FakeClock

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


def write_instance(root: Path, db_url: str) -> tuple[Path, AppConfig]:
    """One appliance instance (config, secrets, blob folder) under `root`."""
    (root / "secrets").mkdir(parents=True, exist_ok=True)
    secret = root / "secrets" / "session-secret"
    secret.write_text(secrets.token_urlsafe(48))
    raw: dict[str, Any] = {
        "private_cloud_address": "https://esign.test.example",
        "network": {"allowed_networks": ["127.0.0.0/8"]},
        "database": {"url": db_url},
        "storage": {"path": str(root / "blobs")},
        "auth": {"session_secret_file": str(secret)},
    }
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path, load_config(path, environ={})


def seed(cfg: AppConfig, documents: int = 3) -> None:
    engine = create_db_engine(cfg.database)
    migrate_database(engine)
    cfg.storage.path.mkdir(parents=True, exist_ok=True)
    store = FilesystemBlobStore(cfg.storage.path)
    with create_session_factory(engine).begin() as session:
        alice = User(
            username="alice",
            source=UserSource.DIRECTORY,
            display_name="Alice Zhang",
            created_at=NOW,
            updated_at=NOW,
        )
        session.add(alice)
        session.flush()
        for number in range(documents):
            content = b"%PDF-1.7\n" + f"contract {number} 合同".encode() + secrets.token_bytes(2048)
            sha = store.put(io.BytesIO(content))
            contract = Contract(
                title=f"NDA {number} 合同",
                initiator_id=alice.id,
                state=ContractState.DRAFT,
                routing=Routing.SEQUENTIAL,
                created_at=NOW,
                updated_at=NOW,
                state_changed_at=NOW,
            )
            contract.versions.append(
                DocumentVersion(number=1, sha256=sha, size=len(content), filename="nda.pdf", created_at=NOW)
            )
            session.add(contract)
    engine.dispose()


def snapshot(cfg: AppConfig) -> tuple[list[tuple[Any, ...]], dict[str, str]]:
    """Contract rows with their document versions, and sha256 of every blob as read back."""
    engine = create_db_engine(cfg.database)
    with create_session_factory(engine)() as session:
        rows = session.execute(
            select(
                Contract.id,
                Contract.title,
                Contract.state,
                Contract.created_at,
                DocumentVersion.number,
                DocumentVersion.sha256,
                DocumentVersion.size,
            )
            .join(DocumentVersion)
            .order_by(Contract.id)
        ).all()
    engine.dispose()
    store = FilesystemBlobStore(cfg.storage.path)
    blobs = {row.sha256: hashlib.sha256(store.get(row.sha256)).hexdigest() for row in rows}
    return [tuple(r) for r in rows], blobs


def empty_target(tmp_path: Path, source_url: str) -> str:
    """An empty database of the same kind: a new SQLite file, or the PG schema emptied."""
    if source_url.startswith("sqlite"):
        return f"sqlite:///{tmp_path}/restored/appliance.db"
    url = make_url(source_url)
    schema = str(url.query["options"]).split("=", 1)[1]
    admin = create_db_engine(load_pg_config(url.set(query={})))
    with admin.begin() as connection:
        connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    admin.dispose()
    return source_url


def load_pg_config(url: Any) -> Any:
    from appliance.config import DatabaseConfig

    return DatabaseConfig(url=url.render_as_string(hide_password=False))


def test_backup_then_restore_into_empty_instance_gives_same_rows_and_blobs(
    tmp_path: Path, any_db_url: str
) -> None:
    config_path, cfg = write_instance(tmp_path / "live", any_db_url)
    seed(cfg)
    before = snapshot(cfg)

    (tmp_path / "backups").mkdir()
    summary = create_backup(cfg, config_path, tmp_path / "backups", FakeClock(NOW))
    assert summary.archive.name == "appliance-backup-20261123T080000Z.tar.gz"
    assert summary.archive.stat().st_mode & 0o777 == 0o600
    assert summary.blob_count == 3
    assert summary.schema_revision == head_revision()
    assert summary.archive_sha256 == hashlib.sha256(summary.archive.read_bytes()).hexdigest()
    with tarfile.open(summary.archive) as tar:
        names = tar.getnames()
    assert names[0] == "MANIFEST.sha256"
    assert "config/config.yaml" in names and "backup.json" in names
    assert not any("softhsm" in n or "secrets" in n for n in names)  # no keys, no secret files

    target_url = empty_target(tmp_path, any_db_url)
    _, target_cfg = write_instance(tmp_path / "restored", target_url)
    result = restore_backup(target_cfg, summary.archive, tmp_path / "restored" / "config.from-backup.yaml")

    assert result.blob_count == 3
    assert result.schema_revision == head_revision()
    assert snapshot(target_cfg) == before
    assert (tmp_path / "restored" / "config.from-backup.yaml").read_bytes() == config_path.read_bytes()


def test_sqlite_backup_is_a_consistent_snapshot_while_a_writer_is_mid_transaction(tmp_path: Path) -> None:
    config_path, cfg = write_instance(tmp_path / "live", f"sqlite:///{tmp_path}/live/appliance.db")
    seed(cfg, documents=1)
    before = snapshot(cfg)
    writer = sqlite3.connect(make_url(cfg.database.url).database or "", isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")  # holds the write lock, as a signing request would
        writer.execute("UPDATE contracts SET title = 'uncommitted'")
        archive = create_backup(cfg, config_path, tmp_path / "b.tar.gz", FakeClock(NOW)).archive
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    _, target_cfg = write_instance(tmp_path / "restored", f"sqlite:///{tmp_path}/restored/appliance.db")
    restore_backup(target_cfg, archive)
    assert snapshot(target_cfg) == before


def rewrite_archive(
    source: Path, target: Path, change: dict[str, bytes | None], extra: dict[str, bytes]
) -> None:
    """Copy an archive, replacing (bytes) or dropping (None) members and adding others."""
    with tarfile.open(source) as old, tarfile.open(target, "w:gz") as new:
        for member in old.getmembers():
            data = old.extractfile(member).read() if member.isfile() else None  # type: ignore[union-attr]
            if member.name in change:
                data = change[member.name]
                if data is None:
                    continue
                member.size = len(data)
            new.addfile(member, io.BytesIO(data) if data is not None else None)
        for name, data in extra.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            new.addfile(info, io.BytesIO(data))


@pytest.fixture
def sqlite_backup(tmp_path: Path) -> tuple[Path, AppConfig]:
    config_path, cfg = write_instance(tmp_path / "live", f"sqlite:///{tmp_path}/live/appliance.db")
    seed(cfg, documents=2)
    archive = create_backup(cfg, config_path, tmp_path / "good.tar.gz", FakeClock(NOW)).archive
    _, target_cfg = write_instance(tmp_path / "restored", f"sqlite:///{tmp_path}/restored/appliance.db")
    return archive, target_cfg


def first_blob(archive: Path) -> str:
    with tarfile.open(archive) as tar:
        return next(n for n in tar.getnames() if n.startswith("blobs/"))


@pytest.mark.parametrize(
    "tamper",
    ["blob content changed", "blob removed", "file added", "dump changed", "manifest line garbled"],
)
def test_restore_refuses_an_archive_that_does_not_match_its_manifest(
    tmp_path: Path, sqlite_backup: tuple[Path, AppConfig], tamper: str
) -> None:
    archive, target_cfg = sqlite_backup
    blob = first_blob(archive)
    change: dict[str, bytes | None] = {}
    extra: dict[str, bytes] = {}
    if tamper == "blob content changed":
        change[blob] = b"%PDF-1.7 forged"
    elif tamper == "blob removed":
        change[blob] = None
    elif tamper == "file added":
        extra["blobs/00/" + "0" * 64] = b"planted"
    elif tamper == "dump changed":
        change["database/appliance.sqlite3"] = b"SQLite format 3\x00" + b"\x00" * 100
    else:
        change["MANIFEST.sha256"] = b"not a manifest line\n"
    bad = tmp_path / "bad.tar.gz"
    rewrite_archive(archive, bad, change, extra)

    with pytest.raises(InvalidInput, match="refusing to restore"):
        restore_backup(target_cfg, bad)
    # Nothing was touched: no database file, no blob folder.
    assert not Path(make_url(target_cfg.database.url).database or "").exists()
    assert not target_cfg.storage.path.exists() or not any(target_cfg.storage.path.iterdir())


@pytest.mark.parametrize("name", ["../escape.txt", "/etc/appliance-planted"])
def test_restore_refuses_members_outside_the_archive(
    tmp_path: Path, sqlite_backup: tuple[Path, AppConfig], name: str
) -> None:
    archive, target_cfg = sqlite_backup
    bad = tmp_path / "bad.tar.gz"
    rewrite_archive(archive, bad, {}, {name: b"x"})
    with pytest.raises(InvalidInput, match=r"refusing to restore|not a readable"):
        restore_backup(target_cfg, bad)
    assert not (tmp_path / "escape.txt").exists()


def test_restore_refuses_a_non_empty_target(tmp_path: Path, sqlite_backup: tuple[Path, AppConfig]) -> None:
    archive, target_cfg = sqlite_backup
    restore_backup(target_cfg, archive)
    with pytest.raises(Conflict, match="not empty"):
        restore_backup(target_cfg, archive)


def test_cli_backup_and_restore(tmp_path: Path) -> None:
    config_path, cfg = write_instance(tmp_path / "live", f"sqlite:///{tmp_path}/live/appliance.db")
    seed(cfg, documents=1)
    runner = CliRunner()
    result = runner.invoke(main, ["--config", str(config_path), "backup", "-o", str(tmp_path / "a.tar.gz")])
    assert result.exit_code == 0, result.output
    assert "1 documents" in result.output and "sha256 " in result.output
    archive_sha256 = result.output.split("sha256 ", 1)[1].split()[0]
    with create_session_factory(create_db_engine(cfg.database))() as session:
        [logged] = session.scalars(select(AuditEvent).where(AuditEvent.action == "ops.backup_written")).all()
    assert json.loads(logged.details)["sha256"] == archive_sha256 and logged.actor_name.startswith("cli")

    target_path, target_cfg = write_instance(tmp_path / "restored", f"sqlite:///{tmp_path}/restored/app.db")
    bad = tmp_path / "bad.tar.gz"
    rewrite_archive(tmp_path / "a.tar.gz", bad, {first_blob(tmp_path / "a.tar.gz"): b"forged"}, {})
    refused = runner.invoke(main, ["--config", str(target_path), "restore", str(bad)])
    assert refused.exit_code == 1
    assert "does not match its manifest" in refused.output

    restored = runner.invoke(main, ["--config", str(target_path), "restore", str(tmp_path / "a.tar.gz")])
    assert restored.exit_code == 0, restored.output
    assert snapshot(target_cfg) == snapshot(cfg)
    assert "database schema at revision" in restored.output
    # the restore is in the restored log, which still verifies as one chain
    with create_session_factory(create_db_engine(target_cfg.database))() as session:
        [record] = session.scalars(select(AuditEvent).where(AuditEvent.action == "ops.backup_restored")).all()
        assert verify_chain(session) == []
    assert json.loads(record.details)["sha256"] == archive_sha256
