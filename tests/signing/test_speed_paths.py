"""The two per-document savings of the signer keep every safety property.

* The validated signer path is reused between signatures (appliance.signing.pathcache), yet a
  newly stored CRL that revokes the certificate is honoured by the very next signature, and an
  entry never outlives its certificate.
* The byte-range digest continues from the input's digest instead of re-reading the document;
  the signature it yields validates for us, pyHanko and pdfsig, and a changed byte is caught.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
from datetime import UTC, datetime, timedelta

import pytest
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.signers.pdf_byterange import PdfByteRangeDigest
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko_certvalidator import CertificateValidator

from appliance.signing import CertificateNotUsable, Verdict, sign_pdf, validate_pdf
from appliance.signing.pathcache import SIGNER_PATHS, SignerPathCache
from appliance.signing.trust import TrustMaterial
from tests.fakes.clock import FakeClock
from tests.fixtures.pdfs import flip_byte_in_signed_range, make_pdf
from tests.signing.conftest import SigningEnv, run_pdfsig

pytestmark = pytest.mark.hsm


@pytest.fixture
def validations(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """DER of every certificate whose path pyHanko validates for usage, in order."""
    seen: list[bytes] = []
    original = CertificateValidator.async_validate_usage

    async def counting(self: CertificateValidator, *args: object, **kwargs: object):
        seen.append(self._certificate.dump())
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(CertificateValidator, "async_validate_usage", counting)
    SIGNER_PATHS.clear()
    return seen


def sign_in_memory(env: SigningEnv, issued, source: bytes, clock: FakeClock) -> bytes:
    out = io.BytesIO()
    with env.signer(issued) as signer:
        sign_pdf(io.BytesIO(source), out, signer=signer, trust=env.trust(), clock=clock)
    return out.getvalue()


def test_signer_path_is_reused_until_a_new_crl_revokes_the_certificate(
    signing_env: SigningEnv, fixed_clock: FakeClock, validations: list[bytes]
) -> None:
    issued = signing_env.issue_person("Sun Qi")
    der = issued.certificate.dump()
    source = make_pdf(seed=11)

    first = sign_in_memory(signing_env, issued, source, fixed_clock)
    second = sign_in_memory(signing_env, issued, source, fixed_clock)
    assert validations.count(der) == 1, "the second signature reuses the validated path"
    for data in (first, second):
        report = validate_pdf(io.BytesIO(data), signing_env.trust(), fixed_clock)
        assert report.verdict is Verdict.VALID
        # the validation data is still the full chain and CRLs of this signature (B-LT content)
        dss = PdfFileReader(io.BytesIO(data)).root["/DSS"]
        assert len(dss["/Certs"]) >= 2 and len(dss["/CRLs"]) >= 1

    signing_env.revoke(issued)  # stores a new CRL: a new cache key
    # signing is judged at the clock's time, and the revocation is later than fixed_clock
    after_revocation = FakeClock(datetime.now(UTC))
    out = io.BytesIO()
    with signing_env.signer(issued) as signer, pytest.raises(CertificateNotUsable, match="revoked"):
        sign_pdf(io.BytesIO(source), out, signer=signer, trust=signing_env.trust(), clock=after_revocation)
    assert out.getvalue() == b""
    assert validations.count(der) == 2, "the new CRL forced a fresh validation"
    # a refusal is never cached: the next attempt validates (and refuses) again
    with signing_env.signer(issued) as signer, pytest.raises(CertificateNotUsable, match="revoked"):
        sign_pdf(
            io.BytesIO(source),
            io.BytesIO(),
            signer=signer,
            trust=signing_env.trust(),
            clock=after_revocation,
        )
    assert validations.count(der) == 3


def test_cache_key_covers_trust_and_time_and_entries_end_with_the_certificate(
    signing_env: SigningEnv, fixed_clock: FakeClock, validations: list[bytes]
) -> None:
    sign_in_memory(signing_env, None, make_pdf(seed=12), fixed_clock)
    trust = signing_env.trust()
    cert = signing_env.person.certificate
    with signing_env.signer() as signer:
        chain = tuple(signer.cert_registry)  # what sign_pdf hands to path building
    now = fixed_clock.now()
    key = SIGNER_PATHS.key(cert, chain, trust, now)
    path = SIGNER_PATHS.get(key, now)
    assert path is not None and path.leaf.dump() == cert.dump()

    # anything the validation depends on changes the key
    assert SIGNER_PATHS.key(cert, chain, dataclasses.replace(trust, crls=trust.crls[:1]), now) != key
    assert SIGNER_PATHS.key(cert, chain, trust.with_extra(other_certs=chain), now) != key
    assert SIGNER_PATHS.key(cert, (), trust, now) != key
    assert SIGNER_PATHS.key(cert, chain, trust, now + timedelta(minutes=2)) != key

    # an entry is never served past the end of its certificate, even inside its bucket
    cache = SignerPathCache(bucket_seconds=10**9)
    cache.put(b"k", path, trust, now)
    assert cache.get(b"k", now) is path
    assert cache.get(b"k", cert.not_valid_after) is None
    assert cache.get(b"k", now) is None  # and it is gone


def test_byte_range_digest_continues_from_the_input_digest(
    signing_env: SigningEnv, fixed_clock: FakeClock, monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    # pyHanko's own fill (which re-reads the whole document) must not run for our signature
    calls: list[int] = []
    original_fill = PdfByteRangeDigest.fill

    def counting_fill(self: PdfByteRangeDigest, *args: object, **kwargs: object):
        calls.append(1)
        return original_fill(self, *args, **kwargs)

    monkeypatch.setattr(PdfByteRangeDigest, "fill", counting_fill)
    source = make_pdf(payload_bytes=300_000, seed=13)
    data = sign_in_memory(signing_env, None, source, fixed_clock)
    assert calls == []

    assert data.startswith(source)
    reader = PdfFileReader(io.BytesIO(data))
    embedded = reader.embedded_signatures[0]
    start, length_1, second, length_2 = embedded.byte_range
    assert start == 0 and second + length_2 == len(data)
    signed_range = data[:length_1] + data[second : second + length_2]
    assert embedded.compute_digest() == hashlib.sha256(signed_range).digest()
    status = validate_pdf_signature(embedded, signing_env.trust().validation_context())
    assert status.intact and status.valid and status.bottom_line
    out = tmp_path / "signed.pdf"
    out.write_bytes(data)
    text = run_pdfsig(signing_env.nss_dir(), out)
    assert "Signature is Valid." in text and "Total document signed" in text

    tampered = tmp_path / "tampered.pdf"
    tampered.write_bytes(flip_byte_in_signed_range(data))
    report = validate_pdf(io.BytesIO(tampered.read_bytes()), signing_env.trust(), fixed_clock)
    assert report.verdict is Verdict.INVALID
    assert "digest_mismatch" in report.signatures[0].problems
    assert "Digest Mismatch." in run_pdfsig(signing_env.nss_dir(), tampered)


def test_trust_from_a_document_adds_only_what_is_new(signing_env: SigningEnv) -> None:
    # a document's DSS repeats the appliance's own certificates and CRLs; copies would only
    # be more candidates for the validator to compare
    trust = signing_env.trust()
    cert = signing_env.person.certificate

    def ders(material: TrustMaterial) -> tuple[list[bytes], ...]:
        return tuple(
            [x.dump() for x in items] for items in (material.roots, material.other_certs, material.crls)
        )

    repeated = trust.with_extra(trust.roots + trust.other_certs, trust.crls + trust.crls)
    assert ders(repeated) == ders(trust)
    added = trust.with_extra((cert, cert))
    assert ders(added)[1] == [*ders(trust)[1], cert.dump()]
