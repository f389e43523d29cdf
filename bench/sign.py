"""Signing benchmark (not a test): documents per second and latency, pyHanko baseline vs our HSM signer.

    .venv/bin/python bench/sign.py [--runs 5] [--quick]

Sets up its own SoftHSM2 token, SQLite database and appliance PKI in a temp dir. For documents
of about 50 KB, 1 MB and 10 MB (already in memory, as the blob store hands them over; output
into memory, as the blob store takes it) it measures, interleaved document by document:

  (a)  pyHanko alone: `PdfSigner.sign_pdf` with an RSA-2048 key in process memory (pyca
       cryptography), certificate from a software root -> issuing CA -> signer chain of the
       same shape as the appliance's, with CRLs. Same PAdES metadata as ours: validation data
       (chain + CRLs, DSS in the signature's revision), signer chain validated with hard-fail
       CRL revocation, the same /Contents reservation, the same strict IncrementalPdfFileWriter.
  (b)  our `appliance.signing.documents.sign_stream` (`sign_pdf` with the HSM key through
       `KeyCustody.pdf_signer`, for a signer resolved once by `resolve_signer`): all of
       (a)'s PDF work, plus preflight (magic, strict parse, encryption, page count, existing
       signatures, certification), sha256 of the input (the bytes that get signed) and of the
       output, validity period at the injected clock, lock/field checks, and the RSA signature
       in SoftHSM2 through the pool (lock, timeout thread). No fsync: durable storage is the
       blob store's job, so it is measured separately as (b file).
       Two savings (a) does not have, both kept in the product, not bench tricks: (b) reuses
       its validated signer path while certificate, chain, anchors and CRLs are byte-identical
       and for at most a minute (appliance.signing.pathcache; a new CRL means a fresh hard-fail
       validation), whereas (a), stock pyHanko, validates the chain for every document; and
       (b)'s byte-range digest continues the input's sha256 (one pass over the document),
       whereas (a) hashes the byte range itself (and has no input sha256 to continue from).
  ratio = (b)/(a) documents per second, from the same run; `ratio_cpu` is the same from
       process CPU time, which the load of other processes on this machine disturbs less.
  (b file) (b) from file to file as `appliance sign` does it (`atomic_output`: temp file, fsync,
       rename, dir fsync).
  (b+tsa) (b) plus a signature timestamp from the internal TSA (a second HSM signature): B-LT.
  (b, 2 processes) two processes, each with its own PKCS#11 session, signing in parallel.
Then visible against invisible at 1 MB, interleaved: (b) invisible; (b) with a visible stamp
of text alone ("Digitally signed by 张伟" and the time, in LXGW WenKai subset for the stamp);
(b) with a seal (北京示例科技有限公司 over a 400x400 RGBA PNG), the same PNG every time, as one
organisation's seal or one person's signature image is; and the seal with a new PNG for
every document (each process keeps the images it used lately, so this is a first use).
`ratio_cpu_*` is visible over invisible process CPU time per document (`ratio_*` the same
from wall time), medians of each run, so that a burst of load elsewhere does not decide it;
the target is at most 1.3 for stamps with a Chinese name and an image (`target_ratio`).
Then raw RSA-2048 signatures per second: through `KeyCustody.sign` (pool, cached key handle),
plain python-pkcs11 on the same token, a C loop calling C_SignInit/C_Sign directly (built with
gcc if present: SoftHSM2's own ceiling), and `openssl speed rsa2048`. Last, the peak extra
resident memory of signing a 50 MB PDF, in memory and file to file.
Every figure is the median of `--runs` runs.
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing
import os
import re
import resource
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

SIZES = {"50KB": 50_000, "1MB": 1_000_000, "10MB": 10_000_000}
DOCS_PER_RUN = {"50KB": 20, "1MB": 10, "10MB": 4}
VISIBLE_DOCS_PER_RUN = 20
SOFTHSM = "/usr/lib/softhsm/libsofthsm2.so"


def setup(base: Path) -> Path:
    """Token, config, database and PKI; returns the config path (before any PKCS#11 call here)."""
    tokens = base / "tokens"
    tokens.mkdir()
    conf = base / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    pin = secrets.token_hex(6)
    subprocess.run(
        ["softhsm2-util", "--init-token", "--free", "--label", "bench", "--so-pin", pin, "--pin", pin],
        check=True,
        capture_output=True,
    )
    (base / "pin").write_text(pin)
    (base / "secret").write_text(secrets.token_urlsafe(48))
    (base / "blobs").mkdir()
    config = base / "config.yaml"
    config.write_text(
        json.dumps(
            {
                "private_cloud_address": "http://127.0.0.1:9",
                "network": {"allowed_networks": ["127.0.0.0/8"]},
                "database": {"url": f"sqlite:///{base}/bench.db"},
                "storage": {"path": str(base / "blobs")},
                "auth": {"session_secret_file": str(base / "secret")},
                "hsm": {"token_label": "bench", "pin_file": str(base / "pin")},
            }
        )
    )
    from appliance.clock import SystemClock
    from appliance.config import load_config
    from appliance.db import create_db_engine, migrate_database
    from appliance.models.enums import CertificateKind
    from appliance.pki import certs
    from appliance.pki.bootstrap import init_pki
    from appliance.pki.ca import make_context
    from appliance.pki.issue import issue_certificate
    from appliance.services import build_services

    cfg = load_config(config, environ={})
    migrate_database(create_db_engine(cfg.database))
    services = build_services(cfg)
    ctx = make_context(services.custody, cfg, SystemClock())
    with services.sessions.begin() as session:
        init_pki(session, ctx)
        issued = issue_certificate(
            session, ctx, kind=CertificateKind.PERSON, subject=certs.SubjectInfo(common_name="Bench Signer")
        )
        (base / "key-label").write_text(issued.key.label)
    return config


class OurSigner:
    """Our signer as the appliance uses it: one custody (one PKCS#11 session) for the process,
    the signer resolved once in a transaction, then `sign_stream` per document."""

    def __init__(self, config_path: Path, with_tsa: bool) -> None:
        from appliance.config import load_config
        from appliance.db import transaction
        from appliance.services import build_services
        from appliance.signing.documents import resolve_signer

        cfg = load_config(config_path)
        self.services = build_services(cfg)
        label = (config_path.parent / "key-label").read_text()
        with transaction(self.services.sessions) as session:
            self.signer = resolve_signer(session, self.services.signing, label, timestamp=with_tsa)
        self.key = self.signer.key

    def sign_bytes(self, data: bytes, options: Any = None) -> bytes:
        from appliance.signing.documents import sign_stream

        out = io.BytesIO()
        sign_stream(self.services.signing, self.signer, io.BytesIO(data), out, options)
        return out.getvalue()

    def sign_file(self, src: Path, dst: Path) -> None:
        from appliance.signing.documents import sign_stream
        from appliance.storage import atomic_output

        with src.open("rb") as source, atomic_output(dst) as out:
            sign_stream(self.services.signing, self.signer, source, out)


VISIBLE_TARGET_RATIO = 1.3
SEAL_NAME = "北京示例科技有限公司"
PERSON_NAME = "张伟"


def seal_png(size: int = 400, variant: int = 0) -> bytes:
    """An organisation's seal as a user would upload it: red ring, star and name on transparency.

    `variant` moves the star by a pixel per step, so each variant is a different image."""
    from PIL import Image, ImageDraw, ImageFont

    from appliance.signing.appearance import STAMP_FONT

    image = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    red = (200, 20, 20, 255)
    draw.ellipse((8, 8, size - 8, size - 8), outline=red, width=size // 40)
    draw.regular_polygon((size // 2 + variant % 50, size // 3, size // 10), 5, fill=red)
    font = ImageFont.truetype(str(STAMP_FONT), size // 10)
    draw.text((size // 2, size * 2 // 3), SEAL_NAME[:6], font=font, fill=red, anchor="mm")
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def visible_vs_invisible(ours: OurSigner, data: bytes, runs: int, count: int) -> dict[str, float]:
    """CPU and wall time per document, visible stamps against none (see the module doc)."""
    from appliance.signing import Appearance, Placement, SignOptions

    placement = Placement(page=1, box=(150, 500, 450, 580))
    seal = seal_png()
    fixed = {
        "invisible": None,
        "visible_text": SignOptions(appearance=Appearance(placement, signer_name=PERSON_NAME)),
        "visible_seal": SignOptions(appearance=Appearance(placement, image_png=seal, signer_name=SEAL_NAME)),
    }
    for options in fixed.values():
        ours.sign_bytes(data, options)  # warm-up: the font opened, the seal encoded once
    figures: dict[str, list[float]] = {}
    for run in range(runs):
        fresh = [
            SignOptions(
                appearance=Appearance(
                    placement, image_png=seal_png(variant=1 + run * count + i), signer_name=SEAL_NAME
                )
            )
            for i in range(count)
        ]
        samples = {key: Sample([], []) for key in [*fixed, "visible_seal_new_image"]}
        for i in range(count):
            for key, options in fixed.items():
                measure(lambda options=options: ours.sign_bytes(data, options), samples[key])
            new = fresh[i]
            measure(lambda new=new: ours.sign_bytes(data, new), samples["visible_seal_new_image"])
        invisible_cpu = statistics.median(samples["invisible"].cpu)
        invisible_wall = statistics.median(samples["invisible"].wall)
        for key, sample in samples.items():
            cpu, wall = statistics.median(sample.cpu), statistics.median(sample.wall)
            figures.setdefault(f"{key}_cpu_ms", []).append(cpu * 1000)
            figures.setdefault(f"{key}_p50_ms", []).append(wall * 1000)
            if key != "invisible":
                figures.setdefault(f"ratio_cpu_{key}", []).append(cpu / invisible_cpu)
                figures.setdefault(f"ratio_{key}", []).append(wall / invisible_wall)
    result = {key: round(statistics.median(values), 3) for key, values in figures.items()}
    result["target_ratio"] = VISIBLE_TARGET_RATIO
    return result


def baseline_signer(bytes_reserved: int) -> Callable[[bytes], bytes]:
    """pyHanko alone with an in-memory key and a software PKI shaped like ours (see module doc)."""
    from asn1crypto import crl as asn1_crl
    from asn1crypto import keys as asn1_keys
    from asn1crypto import x509 as asn1_x509
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import signers
    from pyhanko.sign.fields import MDPPerm, SigSeedSubFilter
    from pyhanko.sign.signers.pdf_signer import DSSContentSettings, SigDSSPlacementPreference
    from pyhanko_certvalidator.registry import SimpleCertificateStore

    from appliance.signing.pyhanko_logs import route_pyhanko_logs
    from appliance.signing.trust import TrustMaterial

    route_pyhanko_logs()  # pyHanko's notice that fetching is off, as for our signer
    now = datetime.now(UTC)
    crl_url = "http://127.0.0.1:9/pki/crl"

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def der(obj: Any) -> bytes:
        return obj.public_bytes(serialization.Encoding.DER)

    def issue(subject: str, key: Any, issuer: str, issuer_key: Any, *, ca: bool) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(name(subject))
            .issuer_name(name(issuer))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False
            )
        )
        if ca:
            builder = builder.add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
            )
        else:
            builder = builder.add_extension(
                x509.KeyUsage(True, True, False, False, False, False, False, False, False), critical=True
            ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        if issuer != subject:
            builder = builder.add_extension(
                x509.CRLDistributionPoints(
                    [x509.DistributionPoint([x509.UniformResourceIdentifier(crl_url)], None, None, None)]
                ),
                critical=False,
            )
        return builder.sign(issuer_key, hashes.SHA256())

    def crl(issuer: str, issuer_key: Any) -> x509.CertificateRevocationList:
        return (
            x509.CertificateRevocationListBuilder()
            .issuer_name(name(issuer))
            .last_update(now - timedelta(minutes=5))
            .next_update(now + timedelta(days=7))
            .add_extension(x509.CRLNumber(1), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False
            )
            .sign(issuer_key, hashes.SHA256())
        )

    root_key, ca_key, key = (rsa.generate_private_key(65537, 2048) for _ in range(3))
    root = issue("Baseline Root CA", root_key, "Baseline Root CA", root_key, ca=True)
    issuing = issue("Baseline Issuing CA", ca_key, "Baseline Root CA", root_key, ca=True)
    cert = issue("Baseline Signer", key, "Baseline Issuing CA", ca_key, ca=False)
    trust = TrustMaterial(
        roots=(asn1_x509.Certificate.load(der(root)),),
        other_certs=(asn1_x509.Certificate.load(der(issuing)),),
        crls=tuple(
            asn1_crl.CertificateList.load(der(c))
            for c in (crl("Baseline Root CA", root_key), crl("Baseline Issuing CA", ca_key))
        ),
    )

    class PreloadedKeySigner(signers.SimpleSigner):
        # pyHanko's SimpleSigner re-parses (and so re-validates) the RSA key on every
        # signature; a fair baseline keeps the parsed key, as an HSM keeps its handle
        async def async_sign_raw(self, data: bytes, digest_algorithm: str, dry_run: bool = False) -> bytes:
            return key.sign(data, padding.PKCS1v15(), hashes.SHA256())

    signer = PreloadedKeySigner(
        signing_cert=asn1_x509.Certificate.load(der(cert)),
        signing_key=asn1_keys.PrivateKeyInfo.load(
            key.private_bytes(
                serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        ),
        # the issuing CA goes into the CMS, as our signer's chain does
        cert_registry=SimpleCertificateStore.from_certs([asn1_x509.Certificate.load(der(issuing))]),
    )

    def sign_bytes(data: bytes) -> bytes:
        meta = signers.PdfSignatureMetadata(
            field_name="Signature1",
            md_algorithm="sha256",
            subfilter=SigSeedSubFilter.PADES,
            embed_validation_info=True,
            validation_context=trust.validation_context(),
            signer_key_usage={"non_repudiation"},
            docmdp_permissions=MDPPerm.FILL_FORMS,
            dss_settings=DSSContentSettings(
                placement=SigDSSPlacementPreference.TOGETHER_WITH_SIGNATURE, include_vri=False
            ),
        )
        out = io.BytesIO()
        signers.PdfSigner(meta, signer=signer).sign_pdf(
            IncrementalPdfFileWriter(io.BytesIO(data), strict=True), bytes_reserved=bytes_reserved, output=out
        )
        return out.getvalue()

    return sign_bytes


@dataclass
class Sample:
    wall: list[float]
    cpu: list[float]

    @property
    def rate(self) -> float:
        return len(self.wall) / sum(self.wall)

    @property
    def cpu_rate(self) -> float:
        return len(self.cpu) / sum(self.cpu)


def measure(call: Callable[[], object], sample: Sample) -> None:
    wall, cpu = time.perf_counter(), time.process_time()
    call()
    sample.cpu.append(time.process_time() - cpu)
    sample.wall.append(time.perf_counter() - wall)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def _worker(args: tuple[str, str, int, Any]) -> tuple[float, float]:
    config, doc, count, barrier = args
    signer = OurSigner(Path(config), with_tsa=False)
    data = Path(doc).read_bytes()
    signer.sign_bytes(data)  # login outside the timing
    barrier.wait()
    start = time.time()
    for _ in range(count):
        signer.sign_bytes(data)
    return start, time.time()


def two_processes(config: Path, doc: Path, count: int) -> float:
    """Documents per second of two processes signing at once (start-up and login excluded)."""
    ctx = multiprocessing.get_context("spawn")  # each process loads the PKCS#11 module itself
    with ctx.Manager() as manager, ctx.Pool(2) as pool:
        barrier = manager.Barrier(2)
        spans = pool.map(_worker, [(str(config), str(doc), count, barrier)] * 2)
    return 2 * count / (max(end for _s, end in spans) - min(start for start, _e in spans))


def direct_child(config: str) -> None:
    """Raw RSA-2048 signatures per second with python-pkcs11 alone (no pool, key found once)."""
    import pkcs11
    from pkcs11 import Mechanism, ObjectClass

    base = Path(config).parent
    token = pkcs11.lib(SOFTHSM).get_token(token_label="bench")
    with token.open(user_pin=(base / "pin").read_text().strip()) as session:
        label = (base / "key-label").read_text()
        (key,) = list(
            session.get_objects(
                {pkcs11.Attribute.LABEL: label, pkcs11.Attribute.CLASS: ObjectClass.PRIVATE_KEY}
            )
        )
        count, start, cpu = 0, time.perf_counter(), time.process_time()
        while time.perf_counter() - start < 2.0:
            key.sign(b"x" * 64, mechanism=Mechanism.SHA256_RSA_PKCS)
            count += 1
        rate = count / (time.perf_counter() - start)
        print(json.dumps({"rate": rate, "cpu_us_per_sign": (time.process_time() - cpu) / count * 1e6}))


C_LOOP = r"""
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <p11-kit/pkcs11.h>
static double clk(clockid_t id) {
    struct timespec t; clock_gettime(id, &t); return t.tv_sec + t.tv_nsec / 1e9;
}
#define CHECK(x) do { CK_RV rv_ = (x); if (rv_ != CKR_OK) { \
    fprintf(stderr, "%s: 0x%lx\n", #x, (unsigned long)rv_); return 1; } } while (0)
int main(int argc, char **argv) {
    if (argc != 6) return 2;  /* module token pin key-label seconds */
    void *lib = dlopen(argv[1], RTLD_NOW);
    if (!lib) return 1;
    CK_FUNCTION_LIST_PTR f;
    CHECK(((CK_C_GetFunctionList)dlsym(lib, "C_GetFunctionList"))(&f));
    CHECK(f->C_Initialize(NULL));
    CK_SLOT_ID slots[64], slot = (CK_SLOT_ID)-1; CK_ULONG n = 64;
    CHECK(f->C_GetSlotList(CK_TRUE, slots, &n));
    for (CK_ULONG i = 0; i < n; i++) {
        CK_TOKEN_INFO ti; char label[33];
        CHECK(f->C_GetTokenInfo(slots[i], &ti));
        memcpy(label, ti.label, 32); label[32] = 0;
        for (int j = 31; j >= 0 && label[j] == ' '; j--) label[j] = 0;
        if (strcmp(label, argv[2]) == 0) slot = slots[i];
    }
    CK_SESSION_HANDLE s;
    CHECK(f->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &s));
    CHECK(f->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR)argv[3], strlen(argv[3])));
    CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
    CK_ATTRIBUTE tmpl[] = {{CKA_CLASS, &cls, sizeof cls}, {CKA_LABEL, argv[4], strlen(argv[4])}};
    CK_OBJECT_HANDLE key; CK_ULONG found = 0;
    CHECK(f->C_FindObjectsInit(s, tmpl, 2));
    CHECK(f->C_FindObjects(s, &key, 1, &found));
    CHECK(f->C_FindObjectsFinal(s));
    if (!found) return 1;
    CK_MECHANISM mech = {CKM_SHA256_RSA_PKCS, NULL, 0};
    unsigned char data[64] = {0}, sig[512];
    double seconds = atof(argv[5]), t0 = clk(CLOCK_MONOTONIC), c0 = clk(CLOCK_PROCESS_CPUTIME_ID);
    long count = 0;
    while (clk(CLOCK_MONOTONIC) - t0 < seconds) {
        CK_ULONG len = sizeof sig;
        CHECK(f->C_SignInit(s, &mech, key));
        CHECK(f->C_Sign(s, data, sizeof data, sig, &len));
        count++;
    }
    double wall = clk(CLOCK_MONOTONIC) - t0, cpu = clk(CLOCK_PROCESS_CPUTIME_ID) - c0;
    printf("{\"rate\": %.1f, \"cpu_us_per_sign\": %.1f}\n", count / wall, cpu / count * 1e6);
    f->C_Logout(s); f->C_CloseSession(s); f->C_Finalize(NULL);
    return 0;
}
"""


def c_loop_rate(base: Path) -> dict[str, float] | None:
    """SoftHSM2's own RSA-2048 rate: C_SignInit + C_Sign in a C loop, no Python at all."""
    if shutil.which("gcc") is None or not Path("/usr/include/p11-kit-1/p11-kit/pkcs11.h").exists():
        return None
    source, binary = base / "p11loop.c", base / "p11loop"
    source.write_text(C_LOOP)
    subprocess.run(
        ["gcc", "-O2", "-I/usr/include/p11-kit-1", "-o", str(binary), str(source), "-ldl"],
        check=True,
        capture_output=True,
    )
    label, pin = (base / "key-label").read_text(), (base / "pin").read_text()
    result = subprocess.run(
        [str(binary), SOFTHSM, "bench", pin, label, "2"], capture_output=True, text=True, check=True
    )
    return json.loads(result.stdout)


def raw_hsm_rate(signer: OurSigner, seconds: float = 2.0) -> dict[str, float]:
    custody = signer.services.custody
    assert custody is not None
    data = b"x" * 64
    count, start, cpu = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - start < seconds:
        custody.sign(signer.key, data, digest_algorithm="sha256")
        count += 1
    rate = count / (time.perf_counter() - start)
    return {"rate": rate, "cpu_us_per_sign": (time.process_time() - cpu) / count * 1e6}


def openssl_rate() -> float | None:
    result = subprocess.run(
        ["openssl", "speed", "-seconds", "2", "rsa2048"], capture_output=True, text=True, timeout=120
    )
    match = re.search(r"^rsa\s+2048 bits\s+\S+\s+\S+\s+([\d.]+)", result.stdout, re.MULTILINE)
    return float(match.group(1)) if match else None


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()


def memory_child(config: str, doc: str, out: str, mode: str) -> None:
    """Peak resident memory above the level just before signing (document already read), 2 ms samples."""
    import threading

    signer = OurSigner(Path(config), with_tsa=False)
    data = Path(doc).read_bytes() if mode == "memory" else b""
    before = _rss_bytes()
    peak = before
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _rss_bytes())
            time.sleep(0.002)

    sampler = threading.Thread(target=sample)
    sampler.start()
    if mode == "memory":
        signed = signer.sign_bytes(data)
    else:
        signer.sign_file(Path(doc), Path(out))
    done.set()
    sampler.join()
    peak = max(peak, _rss_bytes())
    if mode == "memory":
        del signed
    print(json.dumps({"before": before, "peak": peak}))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="fewer documents per run")
    parser.add_argument("--memory-child", nargs=4, help=argparse.SUPPRESS)
    parser.add_argument("--direct-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(*args.memory_child)
        return
    if args.direct_child:
        direct_child(args.direct_child)
        return

    from appliance.signing.pades import _bytes_to_reserve
    from tests.fixtures.pdfs import make_pdf

    print(__doc__.split("\n\n", 2)[2], flush=True)  # what each figure includes
    base = Path(tempfile.mkdtemp(prefix="bench-sign-"))
    try:
        config = setup(base)
        out_dir = base / "out"
        out_dir.mkdir()
        ours = OurSigner(config, with_tsa=False)
        ours_tsa = OurSigner(config, with_tsa=True)
        # the very reservation our signer makes for this certificate and chain (no TSA)
        baseline = baseline_signer(_bytes_to_reserve(ours.signer.certificate, ours.signer.chain, False))
        results: dict[str, Any] = {}
        for label, size in SIZES.items():
            doc = base / f"doc-{label}.pdf"
            doc.write_bytes(make_pdf(payload_bytes=size, seed=1))
            data = doc.read_bytes()
            count = max(2, DOCS_PER_RUN[label] // (2 if args.quick else 1))
            baseline(data), ours.sign_bytes(data), ours_tsa.sign_bytes(data)  # warm-up
            ours.sign_file(doc, out_dir / "warm.pdf")
            runs: dict[str, list[float]] = {}
            lat: dict[str, list[float]] = {"a": [], "b": [], "b_file": [], "b_tsa": []}

            def keep(key: str, value: float, runs: dict[str, list[float]] = runs) -> None:
                runs.setdefault(key, []).append(value)

            for _ in range(args.runs):
                samples = {key: Sample([], []) for key in lat}
                for i in range(count):
                    # interleaved, so a burst of load elsewhere hits both sides alike
                    target = out_dir / f"out-{i}.pdf"
                    measure(lambda data=data: baseline(data), samples["a"])
                    measure(lambda data=data: ours.sign_bytes(data), samples["b"])
                    measure(lambda doc=doc, target=target: ours.sign_file(doc, target), samples["b_file"])
                    measure(lambda data=data: ours_tsa.sign_bytes(data), samples["b_tsa"])
                for key, sample in samples.items():
                    keep(f"{key}_docs_per_s", sample.rate)
                    lat[key] += sample.wall
                keep("ratio_b_over_a", samples["b"].rate / samples["a"].rate)
                keep("ratio_cpu_b_over_a", samples["b"].cpu_rate / samples["a"].cpu_rate)
                keep("b_2proc_docs_per_s", two_processes(config, doc, count))
            results[label] = {
                "file_bytes": len(data),
                **{key: round(statistics.median(values), 3) for key, values in runs.items()},
                **{f"{k}_p50_ms": round(percentile(v, 50) * 1000, 1) for k, v in lat.items()},
                **{f"{k}_p95_ms": round(percentile(v, 95) * 1000, 1) for k, v in lat.items()},
            }
            print(label, json.dumps(results[label]), flush=True)

        data = (base / "doc-1MB.pdf").read_bytes()
        visible = visible_vs_invisible(
            ours, data, args.runs, VISIBLE_DOCS_PER_RUN // (2 if args.quick else 1)
        )
        results["visible_1MB"] = {"file_bytes": len(data), **visible}
        print("visible_1MB", json.dumps(results["visible_1MB"]), flush=True)

        raw: dict[str, list[float]] = {}
        for _ in range(args.runs):
            # back to back, so that all four see the same machine load
            ours_raw = raw_hsm_rate(ours)
            direct = subprocess.run(
                [sys.executable, __file__, "--direct-child", str(config)],
                capture_output=True,
                text=True,
                check=True,
            )
            direct_raw = json.loads(direct.stdout.splitlines()[-1])
            c_raw = c_loop_rate(base)
            ossl = openssl_rate()
            raw.setdefault("custody_signs_per_s", []).append(ours_raw["rate"])
            raw.setdefault("custody_cpu_us_per_sign", []).append(ours_raw["cpu_us_per_sign"])
            raw.setdefault("python_pkcs11_signs_per_s", []).append(direct_raw["rate"])
            raw.setdefault("python_pkcs11_cpu_us_per_sign", []).append(direct_raw["cpu_us_per_sign"])
            if c_raw is not None:
                raw.setdefault("c_loop_signs_per_s", []).append(c_raw["rate"])
                raw.setdefault("c_loop_cpu_us_per_sign", []).append(c_raw["cpu_us_per_sign"])
            if ossl is not None:
                raw.setdefault("openssl_speed_signs_per_s", []).append(ossl)
        figures = {key: round(statistics.median(values), 1) for key, values in raw.items()}
        if "openssl_speed_signs_per_s" in figures:
            for key in ("custody_signs_per_s", "python_pkcs11_signs_per_s", "c_loop_signs_per_s"):
                if key in figures:
                    figures[f"{key.removesuffix('_signs_per_s')}_over_openssl"] = round(
                        figures[key] / figures["openssl_speed_signs_per_s"], 3
                    )
        results["raw_rsa2048"] = figures
        print("raw_rsa2048", json.dumps(figures), flush=True)

        big = base / "doc-50MB.pdf"
        big.write_bytes(make_pdf(payload_bytes=50_000_000, seed=2))
        results["memory_50MB"] = {"file_bytes": big.stat().st_size}
        for mode in ("memory", "file"):
            child = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--memory-child",
                    str(config),
                    str(big),
                    str(out_dir / "big.pdf"),
                    mode,
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            mem = json.loads(child.stdout.strip().splitlines()[-1])
            extra = mem["peak"] - mem["before"]
            results["memory_50MB"][f"{mode}_peak_extra_bytes"] = extra
            results["memory_50MB"][f"{mode}_ratio_to_file"] = round(extra / big.stat().st_size, 2)
        print("memory_50MB", json.dumps(results["memory_50MB"]))
        print(json.dumps(results, indent=2))
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
