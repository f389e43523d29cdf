"""Backup and restore of one appliance instance.

A backup is one tar archive (gzip) holding:

    MANIFEST.sha256               "<sha256>  <path>" for every other file (`sha256sum -c` reads it)
    backup.json                   format, appliance version, time, database backend, schema revision
    database/appliance.sqlite3    SQLite: taken with the online backup API (consistent while serving)
    database/appliance.pgdump     PostgreSQL: `pg_dump -Fc` (one consistent snapshot)
    blobs/ab/ab12...              the content-addressed blob store, copied AFTER the database
                                  snapshot so every hash the database references is present
    config/config.yaml            the YAML config (no secrets: those live in *_file secrets)

HSM keys are never in it: they cannot leave the HSM, which has its own backup procedure
(docs/install.md). Secret files are not in it either; the installer provisions them.

Restore verifies the whole archive against its manifest before it touches anything,
and only restores into an empty database and an empty blob store.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from sqlalchemy import Engine, inspect
from sqlalchemy.engine import URL
from sqlalchemy.exc import SQLAlchemyError

from appliance import __version__
from appliance.clock import Clock
from appliance.config import AppConfig
from appliance.db import create_db_engine, current_revision
from appliance.errors import Conflict, InvalidInput, Unavailable
from appliance.storage import FilesystemBlobStore, atomic_output

FORMAT = "esign-appliance-backup/1"
MANIFEST = "MANIFEST.sha256"
METADATA = "backup.json"
SQLITE_DUMP = "database/appliance.sqlite3"
PG_DUMP = "database/appliance.pgdump"
CONFIG_MEMBER = "config/config.yaml"

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_MANIFEST_LINE = re.compile(r"^([0-9a-f]{64})  (\S.*)$")
_SEARCH_PATH = re.compile(r"-csearch_path=([A-Za-z_][A-Za-z0-9_]*)")
_CHUNK = 1024 * 1024
# pg_dump must not wait forever on a lock held by a stuck transaction.
_PG_TIMEOUT_SECONDS = 3600


@dataclass(frozen=True)
class BackupSummary:
    archive: Path
    archive_sha256: str
    database_backend: str
    schema_revision: str | None
    blob_count: int


@dataclass(frozen=True)
class RestoreSummary:
    database_backend: str
    schema_revision: str | None
    blob_count: int
    config_written: Path | None
    archive_sha256: str


@dataclass(frozen=True)
class VerifiedBackup:
    """An archive extracted into `root` whose every file matched the manifest."""

    root: Path
    metadata: Mapping[str, Any]
    archive_sha256: str
    files: Mapping[str, str]


def create_backup(cfg: AppConfig, config_file: Path, output: Path, clock: Clock) -> BackupSummary:
    """Write a backup archive to `output` (a file path, or a folder to put a dated archive in).

    :raises Unavailable: the database or blob store cannot be read.
    :raises Conflict: a blob's content no longer matches its name (the store is damaged).
    """
    created_at = clock.now()
    if output.is_dir():
        output = output / f"appliance-backup-{created_at.strftime('%Y%m%dT%H%M%SZ')}.tar.gz"
    if output.exists():
        raise Conflict(f"{output} already exists; choose another name")
    engine = create_db_engine(cfg.database, cfg.secrets)
    backend = engine.url.get_backend_name()
    output.parent.mkdir(parents=True, exist_ok=True)
    # Staging next to the archive, not in /tmp: a dump can be as large as the database.
    with tempfile.TemporaryDirectory(prefix=".backup-", dir=output.parent) as staging_name:
        staging = Path(staging_name)
        try:
            if backend == "sqlite":
                dump_member = SQLITE_DUMP
                _dump_sqlite(engine.url, staging / "dump")
                # Read from the copy: the revision that belongs to exactly this snapshot.
                revision = _sqlite_revision(staging / "dump")
            else:
                dump_member = PG_DUMP
                revision = _read_revision(engine)
                _dump_postgres(engine.url, cfg, staging / "dump")
        finally:
            engine.dispose()
        members: list[tuple[str, Path]] = [(dump_member, staging / "dump")]
        # After the database snapshot, so every referenced blob is already on disk.
        blobs = list(_blob_files(cfg.storage.path))
        members += [(f"blobs/{path.parent.name}/{path.name}", path) for path in blobs]
        members.append((CONFIG_MEMBER, config_file))
        sums: dict[str, str] = {}
        for name, path in members:
            sums[name] = _sha256_file(path)
            if name.startswith("blobs/") and sums[name] != path.name:
                raise Conflict(f"blob {path.name} in the store does not match its content; investigate first")
        metadata = {
            "format": FORMAT,
            "appliance_version": __version__,
            "created_at": created_at.isoformat(),
            "database_backend": backend,
            "schema_revision": revision,
            "blob_count": len(blobs),
        }
        meta_path = staging / METADATA
        meta_path.write_text(json.dumps(metadata, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        members.append((METADATA, meta_path))
        sums[METADATA] = _sha256_file(meta_path)
        manifest_path = staging / MANIFEST
        manifest_path.write_text("".join(f"{sums[name]}  {name}\n" for name, _ in members), encoding="utf-8")
        members.insert(0, (MANIFEST, manifest_path))
        # The archive holds every document: readable by its owner only.
        with atomic_output(output, mode=0o600) as archive:
            _write_archive(archive, members)
    return BackupSummary(
        archive=output,
        archive_sha256=_sha256_file(output),
        database_backend=backend,
        schema_revision=revision,
        blob_count=len(blobs),
    )


def verify_archive(archive: Path, workdir: Path) -> VerifiedBackup:
    """Extract `archive` into `workdir` and check every file against the manifest.

    :raises InvalidInput: the archive is unreadable, unsafe, or does not match its manifest.
    """
    try:
        # One pass over the file hashes exactly the bytes that are extracted and checked.
        with archive.open("rb") as handle:
            reader = _HashingReader(handle)
            # stream mode only reads; typeshed asks every file object for write and seek too
            with tarfile.open(fileobj=reader, mode="r|*") as tar:  # type: ignore[call-overload]
                for member in tar:
                    _check_member(member)
                    # The "data" filter also refuses links, devices and paths leaving workdir.
                    tar.extract(member, workdir, filter="data")
            archive_sha256 = reader.rest_and_hexdigest()
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise InvalidInput(f"{archive} is not a readable backup archive") from exc
    manifest_file = workdir / MANIFEST
    if not manifest_file.is_file():
        raise InvalidInput(f"{archive} has no {MANIFEST}; refusing to restore")
    listed: dict[str, str] = {}
    for number, line in enumerate(manifest_file.read_text(encoding="utf-8").splitlines(), start=1):
        match = _MANIFEST_LINE.match(line)
        if match is None:
            raise InvalidInput(f"{MANIFEST} line {number} is malformed; refusing to restore")
        listed[match.group(2)] = match.group(1)
    present = {
        path.relative_to(workdir).as_posix()
        for path in workdir.rglob("*")
        if path.is_file() and path != manifest_file
    }
    problems = [f"{name}: listed in the manifest but missing" for name in sorted(listed.keys() - present)]
    problems += [f"{name}: not listed in the manifest" for name in sorted(present - listed.keys())]
    for name in sorted(listed.keys() & present):
        if _sha256_file(workdir / name) != listed[name]:
            problems.append(f"{name}: sha256 differs from the manifest")
    for name in listed:
        if name.startswith("blobs/") and PurePosixPath(name).name != listed[name]:
            problems.append(f"{name}: a blob's name must be the sha256 of its content")
    if problems:
        shown = "; ".join(problems[:5]) + (f" (and {len(problems) - 5} more)" if len(problems) > 5 else "")
        raise InvalidInput(f"the archive does not match its manifest, refusing to restore: {shown}")
    try:
        metadata = json.loads((workdir / METADATA).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"{METADATA} is missing or not JSON; refusing to restore") from exc
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise InvalidInput(f"not an appliance backup of format {FORMAT}; refusing to restore")
    return VerifiedBackup(root=workdir, metadata=metadata, files=listed, archive_sha256=archive_sha256)


class _HashingReader:
    """A file read front to back (tarfile's stream mode), hashing what passes through."""

    def __init__(self, handle: BinaryIO) -> None:
        self._handle = handle
        self._digest = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self._handle.read(size)
        self._digest.update(data)
        return data

    def rest_and_hexdigest(self) -> str:
        """The sha256 of the whole file: what tarfile left unread (padding) included."""
        while self.read(_CHUNK):
            pass
        return self._digest.hexdigest()


def restore_backup(cfg: AppConfig, archive: Path, config_out: Path | None = None) -> RestoreSummary:
    """Restore `archive` into the (empty) database and blob store that `cfg` names.

    Nothing is written until the whole archive has matched its manifest.
    Stop the service first; afterwards run `appliance migrate` if the backup is older.

    :raises InvalidInput: the archive does not match its manifest or is of another backend.
    :raises Conflict: the target database or blob store is not empty.
    :raises Unavailable: the database cannot be reached or the restore tool failed.
    """
    store_root = cfg.storage.path
    engine = create_db_engine(cfg.database, cfg.secrets)
    backend = engine.url.get_backend_name()
    try:
        with tempfile.TemporaryDirectory(prefix=".restore-", dir=_staging_parent(store_root)) as name:
            verified = verify_archive(archive, Path(name))
            if verified.metadata.get("database_backend") != backend:
                raise InvalidInput(
                    f"the backup holds a {verified.metadata.get('database_backend')} database "
                    f"but the config names {backend}; restore into the same kind of database"
                )
            _require_empty_target(engine, store_root)
            if config_out is not None and config_out.exists():
                raise Conflict(f"{config_out} already exists; choose another path for the restored config")
            if backend == "sqlite":
                _restore_sqlite(engine, verified.root / SQLITE_DUMP)
            else:
                _restore_postgres(engine.url, cfg, verified.root / PG_DUMP)
            store = FilesystemBlobStore(store_root)
            store_root.mkdir(parents=True, exist_ok=True)
            blob_names = sorted(n for n in verified.files if n.startswith("blobs/"))
            for member in blob_names:
                # put() names the blob by the hash of what it writes: a second check of the content.
                with (verified.root / member).open("rb") as blob:
                    store.put(blob)
            if config_out is not None:
                config_out.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(verified.root / CONFIG_MEMBER, config_out)
                config_out.chmod(0o640)
            revision = verified.metadata.get("schema_revision")
    finally:
        engine.dispose()
    return RestoreSummary(
        database_backend=backend,
        schema_revision=revision if isinstance(revision, str) else None,
        blob_count=len(blob_names),
        config_written=config_out,
        archive_sha256=verified.archive_sha256,
    )


def _check_member(member: tarfile.TarInfo) -> None:
    path = PurePosixPath(member.name)
    if path.is_absolute() or ".." in path.parts:
        raise InvalidInput(f"archive member {member.name!r} points outside the archive; refusing to restore")
    if not (member.isfile() or member.isdir()):
        raise InvalidInput(f"archive member {member.name!r} is not a plain file; refusing to restore")


def _staging_parent(store_root: Path) -> Path:
    # Same filesystem as the store when possible, so large restores do not fill /tmp.
    parent = store_root.parent
    parent.mkdir(parents=True, exist_ok=True)
    return parent


def _read_revision(engine: Engine) -> str | None:
    try:
        return current_revision(engine)
    except SQLAlchemyError as exc:
        raise Unavailable("the database cannot be reached for the backup") from exc


def _blob_files(root: Path) -> Iterator[Path]:
    if not root.is_dir():
        raise Unavailable(f"the blob store {root} does not exist")
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and len(p.name) == 2):
        for path in sorted(folder.iterdir()):
            # Skips the store's in-flight ".tmp-" files; only finished blobs are named by hash.
            if path.is_file() and _SHA256.match(path.name) and path.name.startswith(folder.name):
                yield path


def _sqlite_path(url: URL) -> Path:
    if not url.database or url.database == ":memory:":
        raise InvalidInput("an in-memory SQLite database cannot be backed up or restored")
    return Path(url.database)


def _dump_sqlite(url: URL, target: Path) -> None:
    source_path = _sqlite_path(url)
    if not source_path.is_file():
        raise Unavailable(f"the database file {source_path} does not exist")
    try:
        # Read-only URI: the backup must never create or change the live database.
        source = sqlite3.connect(f"file:{source_path}?mode=ro", uri=True)
        try:
            dest = sqlite3.connect(target)
            try:
                source.backup(dest)
                # One self-contained file in the archive, not a WAL pair.
                dest.execute("PRAGMA journal_mode=DELETE")
            finally:
                dest.close()
        finally:
            source.close()
    except sqlite3.Error as exc:
        raise Unavailable("the SQLite database could not be copied for the backup") from exc


def _sqlite_revision(dump: Path) -> str | None:
    connection = sqlite3.connect(dump)
    try:
        row = connection.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.Error:
        return None  # never migrated
    finally:
        connection.close()
    return str(row[0]) if row else None


def _restore_sqlite(engine: Engine, dump: Path) -> None:
    target = _sqlite_path(engine.url)
    engine.dispose()
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(target) as restored, open(dump, "rb") as source:
        shutil.copyfileobj(source, restored)
        # the old database's journal must not be replayed onto the restored file
        for leftover in (target.with_name(target.name + "-wal"), target.with_name(target.name + "-shm")):
            leftover.unlink(missing_ok=True)


def _pg_connection(url: URL, cfg: AppConfig) -> tuple[str, dict[str, str], str]:
    """libpq URI without the password, the environment carrying it, and the schema in use."""
    password = url.password
    if cfg.secrets.database_password is not None:
        password = cfg.secrets.database_password.get_secret_value()
    libpq = url.set(drivername="postgresql", password=None).render_as_string(hide_password=False)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    if password:
        # In the environment, never on the command line where `ps` shows it.
        env["PGPASSWORD"] = str(password)
    options = url.query.get("options", "")
    match = _SEARCH_PATH.search(options if isinstance(options, str) else " ".join(options))
    return libpq, env, match.group(1) if match else "public"


def _run_pg_tool(args: list[str], env: dict[str, str], what: str) -> str:
    try:
        result = subprocess.run(
            args, env=env, capture_output=True, text=True, timeout=_PG_TIMEOUT_SECONDS, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise Unavailable(f"{what} could not run (is postgresql-client installed?)") from exc
    if result.returncode != 0:
        # pg tools' stderr names objects, never the password (it travels in PGPASSWORD).
        detail = result.stderr.strip().splitlines()[-1:] or ["no message"]
        raise Unavailable(f"{what} failed: {detail[0]}")
    return result.stdout


def _dump_postgres(url: URL, cfg: AppConfig, target: Path) -> None:
    libpq, env, schema = _pg_connection(url, cfg)
    _run_pg_tool(
        [
            "pg_dump",
            "--format=custom",
            "--no-owner",
            "--no-acl",
            f"--schema={schema}",
            f"--file={target}",
            libpq,
        ],
        env,
        "pg_dump",
    )


def _restore_postgres(url: URL, cfg: AppConfig, dump: Path) -> None:
    libpq, env, _schema = _pg_connection(url, cfg)
    toc = _run_pg_tool(["pg_restore", "--list", str(dump)], env, "pg_restore --list")
    # The target schema already exists (public, or the one the URL selects): restoring
    # its CREATE SCHEMA / COMMENT entries would fail, so restore everything but those.
    kept = [line for line in toc.splitlines() if not re.match(r"^\d+; \d+ \d+ (SCHEMA|COMMENT) - ", line)]
    listing = dump.with_suffix(".list")
    listing.write_text("\n".join(kept) + "\n", encoding="utf-8")
    _run_pg_tool(
        [
            "pg_restore",
            "--no-owner",
            "--no-acl",
            "--exit-on-error",
            "--single-transaction",
            f"--use-list={listing}",
            f"--dbname={libpq}",
            str(dump),
        ],
        env,
        "pg_restore",
    )


def _require_empty_target(engine: Engine, store_root: Path) -> None:
    try:
        tables = inspect(engine).get_table_names()
    except SQLAlchemyError as exc:
        raise Unavailable("the target database cannot be reached") from exc
    finally:
        engine.dispose()
    if tables:
        raise Conflict(
            "the target database is not empty; restore into a new, empty database "
            "(and stop the service first)"
        )
    if store_root.exists() and any(store_root.iterdir()):
        raise Conflict(f"the blob store {store_root} is not empty; restore into an empty folder")


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _write_archive(out: BinaryIO, members: list[tuple[str, Path]]) -> None:
    with tarfile.open(fileobj=out, mode="w:gz", compresslevel=6) as tar:
        for name, source in members:
            info = tar.gettarinfo(str(source), arcname=name)
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mode = 0o600
            with open(source, "rb") as handle:
                tar.addfile(info, handle)
