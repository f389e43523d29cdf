"""RFC 3161 timestamp authority: responses signed by the TSA key in the HSM.

`respond_timestamp` answers a DER TimeStampReq (used by /pki/tsa); `InternalTimeStamper` is
the same authority as a pyHanko `TimeStamper`, for in-process use by the signer.
`make_timestamper` picks internal, external (pyHanko's HTTP client with `tsa.url`) or none.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

from asn1crypto import algos, cms, core, tsp, x509
from pyhanko.sign.timestamps import HTTPTimeStamper, TimeStamper
from sqlalchemy.orm import Session

from appliance.config import TsaMode
from appliance.errors import Unavailable
from appliance.hsm import default_digest_algorithm
from appliance.models.enums import CertificateKind
from appliance.pki.ca import CaMaterial, PkiContext, load_active_material
from appliance.pki.certs import sign_der, signed_digest_algorithm

log = logging.getLogger(__name__)

TSA_POLICY = "2.25.223006520155187185442296185934587893851"
"""Our TSA policy OID (a UUID-derived OID, ITU-T X.667: unique without registration)."""
ACCEPTED_DIGESTS = frozenset({"sha256", "sha384", "sha512"})
EXTERNAL_TIMEOUT_SECONDS = 10


@dataclass(frozen=True)
class TsaMaterial:
    tsa: CaMaterial
    chain: list[x509.Certificate]
    """Issuing CA and root, sent along when the request asks for certificates."""


def load_tsa(session: Session) -> TsaMaterial:
    """The TSA certificate, its key and its CA chain.

    Validity in time is checked for every token (`build_response`), because holders such as
    `InternalTimeStamper` keep the material for a long time.
    :raises PkiNotInitialised: no TSA certificate yet.
    :raises CaNotUsable: the TSA certificate or a CA above it is revoked or superseded.
    """
    material = load_active_material(session, CertificateKind.TSA)
    return TsaMaterial(tsa=material, chain=list(material.issuers))


class RejectionResponse(core.Sequence):
    """TimeStampResp without a token: asn1crypto's class makes timeStampToken mandatory,
    RFC 3161 says it is absent unless the status is granted."""

    _fields = [  # noqa: RUF012 - asn1crypto reads it as a class attribute
        ("status", tsp.PKIStatusInfo),
        ("time_stamp_token", cms.ContentInfo, {"optional": True}),
    ]


def _rejection(fail_info: str, text: str) -> tsp.TimeStampResp:
    return RejectionResponse(
        {
            "status": {
                "status": "rejection",
                "status_string": [text],
                "fail_info": tsp.PKIFailureInfo({fail_info}),
            }
        }
    )  # type: ignore[return-value]  # same DER shape; callers only .dump() it


@dataclass(frozen=True)
class _Query:
    """The fields of a TimeStampReq, fully decoded into plain values."""

    version: str
    imprint: tsp.MessageImprint
    digest_name: str
    hashed_message: bytes
    policy: str | None
    nonce: int | None
    cert_req: bool
    has_extensions: bool


def _decode(request: tsp.TimeStampReq) -> _Query | None:
    """None when any part of the request does not decode."""
    try:
        imprint = request["message_imprint"]
        return _Query(
            version=request["version"].native,
            imprint=imprint,
            digest_name=imprint["hash_algorithm"]["algorithm"].native,
            hashed_message=bytes(imprint["hashed_message"].native),
            policy=request["req_policy"].native,
            nonce=request["nonce"].native,
            cert_req=bool(request["cert_req"].native),
            has_extensions=bool(request["extensions"].native),
        )
    # asn1crypto parses lazily and a malformed field surfaces as almost any exception type
    # (a fuzz run found AttributeError and IndexError besides ValueError/TypeError/KeyError).
    # This touches only the client's bytes, never the HSM or the database, so any failure
    # here means "bad request", never a server error.
    except Exception:
        return None


def respond_timestamp(ctx: PkiContext, material: TsaMaterial, request_der: bytes) -> bytes:
    """Answer a DER TimeStampReq with a DER TimeStampResp (a rejection for bad requests).

    Raises only when the HSM fails (HsmUnavailable: 503) or the TSA certificate may not
    sign now (CaNotUsable: 409).
    """
    try:
        request = tsp.TimeStampReq.load(request_der, strict=True)
    except Exception:  # as in _decode: only the client's bytes are involved
        return _rejection("bad_data_format", "not a DER TimeStampReq").dump()
    return build_response(ctx, material, request).dump()


def build_response(ctx: PkiContext, material: TsaMaterial, request: tsp.TimeStampReq) -> tsp.TimeStampResp:
    """A granted response with a token, or a rejection (RFC 3161 PKIStatusInfo) for a bad request.

    :raises CaNotUsable: the TSA certificate or a CA above it is outside its validity now.
    :raises HsmUnavailable: the HSM failed.
    """
    query = _decode(request)
    if query is None:
        return _rejection("bad_data_format", "not a DER TimeStampReq")
    if query.version != "v1":
        return _rejection("bad_request", "unsupported request version")
    if query.digest_name not in ACCEPTED_DIGESTS:
        return _rejection("bad_alg", "digest algorithm not accepted (use SHA-256, SHA-384 or SHA-512)")
    if len(query.hashed_message) != hashlib.new(query.digest_name).digest_size:
        return _rejection("bad_data_format", "hashed message length does not match its algorithm")
    if query.policy is not None and query.policy != TSA_POLICY:
        return _rejection("unaccepted_policy", "requested policy not supported")
    if query.has_extensions:
        return _rejection("unaccepted_extension", "request extensions are not supported")

    now = ctx.clock.now()
    material.tsa.ensure_valid(now)
    tst_info = tsp.TSTInfo(
        {
            "version": "v1",
            "policy": TSA_POLICY,
            # RFC 3161 2.4.2: the same value as in the request, parameters included
            "message_imprint": query.imprint.copy(),
            "serial_number": ctx.new_serial(),
            "gen_time": now,
            "accuracy": {"seconds": 1},
            "ordering": False,
            "nonce": query.nonce,
            "tsa": x509.GeneralName(name="directory_name", value=material.tsa.certificate.subject),
        }
    )
    token = _sign_tst_info(ctx, material, tst_info, include_certs=query.cert_req)
    return tsp.TimeStampResp({"status": {"status": "granted"}, "time_stamp_token": token})


def _sign_tst_info(
    ctx: PkiContext, material: TsaMaterial, tst_info: tsp.TSTInfo, *, include_certs: bool
) -> cms.ContentInfo:
    key = material.tsa.key
    cert = material.tsa.certificate
    content = tst_info.dump()
    digest_name = default_digest_algorithm(key.algorithm)
    signed_attrs = cms.CMSAttributes(
        [
            cms.CMSAttribute({"type": "content_type", "values": ["tst_info"]}),
            cms.CMSAttribute(
                {"type": "signing_time", "values": [cms.Time(name="utc_time", value=ctx.now())]}
            ),
            cms.CMSAttribute(
                {"type": "message_digest", "values": [hashlib.new(digest_name, content).digest()]}
            ),
            # ESS signing-certificate-v2 (RFC 5816) binds the signature to the TSA certificate
            cms.CMSAttribute(
                {
                    "type": "signing_certificate_v2",
                    "values": [
                        {
                            "certs": [
                                {
                                    "hash_algorithm": {"algorithm": "sha256"},
                                    "cert_hash": hashlib.sha256(cert.dump()).digest(),
                                    "issuer_serial": {
                                        "issuer": [
                                            x509.GeneralName(name="directory_name", value=cert.issuer)
                                        ],
                                        "serial_number": cert.serial_number,
                                    },
                                }
                            ]
                        }
                    ],
                }
            ),
        ]
    )
    # the signature covers the attributes as a DER SET (tag 0x31), not as the [0] IMPLICIT field
    signature = sign_der(ctx.custody, key, signed_attrs.dump())
    signer_info = cms.SignerInfo(
        {
            "version": "v1",
            "sid": cms.SignerIdentifier(
                name="issuer_and_serial_number",
                value={"issuer": cert.issuer, "serial_number": cert.serial_number},
            ),
            "digest_algorithm": {"algorithm": digest_name},
            "signed_attrs": signed_attrs,
            "signature_algorithm": signed_digest_algorithm(key),
            "signature": signature,
        }
    )
    signed_data = {
        "version": "v3",
        "digest_algorithms": [algos.DigestAlgorithm({"algorithm": digest_name})],
        "encap_content_info": {"content_type": "tst_info", "content": core.ParsableOctetString(content)},
        "signer_infos": [signer_info],
    }
    if include_certs:
        signed_data["certificates"] = [cert, *material.chain]
    return cms.ContentInfo({"content_type": "signed_data", "content": cms.SignedData(signed_data)})


class InternalTimeStamper(TimeStamper):
    """The appliance TSA as a pyHanko `TimeStamper`: no HTTP, the HSM signs in-process."""

    def __init__(self, ctx: PkiContext, material_loader: Callable[[], TsaMaterial]) -> None:
        super().__init__(include_nonce=True)
        self._ctx = ctx
        self._load = material_loader
        self._material: TsaMaterial | None = None

    async def async_request_tsa_response(self, req: tsp.TimeStampReq) -> tsp.TimeStampResp:
        if self._material is None:
            self._material = self._load()
        # Called directly, not through the loop's default executor: the HSM pool already runs
        # the token call in its own thread with the HSM timeout, and the event loop of one
        # signing has nothing else to do meanwhile. A fresh loop per document has no executor
        # yet, so each timestamp would also start a thread.
        return build_response(self._ctx, self._material, req)


def make_timestamper(ctx: PkiContext, material_loader: Callable[[], TsaMaterial]) -> TimeStamper | None:
    """The configured timestamper: internal TSA, external TSA URL (tsa.url), or None (tsa.mode none)."""
    tsa = ctx.config.tsa
    if tsa.mode is TsaMode.NONE:
        return None
    if tsa.mode is TsaMode.EXTERNAL:
        if tsa.url is None:
            # TsaConfig refuses this when the config is loaded; a hand-built config must not pass
            raise Unavailable("tsa.mode is external but tsa.url is not set")
        return HTTPTimeStamper(tsa.url, timeout=EXTERNAL_TIMEOUT_SECONDS)
    return InternalTimeStamper(ctx, material_loader)
