"""Workflow refusals with stable codes API clients can act on (the problem's type)."""

from __future__ import annotations

from appliance.errors import Conflict


class InvalidState(Conflict):
    """The contract's state does not allow this (e.g. signing a withdrawn contract)."""

    code = "invalid_state"


class NotYourTurn(Conflict):
    code = "not_your_turn"


class CertificateRequired(Conflict):
    """The signer has no usable certificate: a person applies for one; a seal's org admin does."""

    code = "certificate_required"


class DocumentIntegrityFailed(Conflict):
    """An earlier signature of the current version no longer verifies: nothing is signed on top."""

    code = "document_integrity_failed"
