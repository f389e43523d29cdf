"""Operator procedures that are not web requests: backup and restore."""

from appliance.ops.backup import (
    BackupSummary,
    RestoreSummary,
    create_backup,
    restore_backup,
    verify_archive,
)

__all__ = ["BackupSummary", "RestoreSummary", "create_backup", "restore_backup", "verify_archive"]
