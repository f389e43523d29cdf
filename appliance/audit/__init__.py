"""Append-only operation log chained by hash, and its verification."""

from appliance.audit.log import AuditRecord, ChainBreak, append_event, append_events, verify_chain

__all__ = ["AuditRecord", "ChainBreak", "append_event", "append_events", "verify_chain"]
