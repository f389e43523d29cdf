"""Loading and validating the appliance's YAML configuration.

The YAML holds no secrets: each secret is read from a file named in the YAML
(`*_file`) or from an environment variable, which wins when set. Every problem
is reported as one line `key.path: what is wrong`, all at once.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from appliance.errors import ConfigError

DEFAULT_CONFIG_PATH = Path("/etc/appliance/config.yaml")
CONFIG_ENV = "APPLIANCE_CONFIG"


class Role(StrEnum):
    EMPLOYEE = "employee"
    INITIATOR = "initiator"
    APPROVER = "approver"
    SEAL_KEEPER = "seal_keeper"
    ORG_ADMIN = "org_admin"
    ARCHIVE_ADMIN = "archive_admin"
    AUDITOR = "auditor"
    SYSTEM_ADMIN = "system_admin"


def _network(value: str) -> str:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError as exc:
        raise ValueError(f"not an IP network in CIDR form (e.g. 10.0.0.0/8): {value!r}") from exc
    return value


Network = Annotated[str, AfterValidator(_network)]
_HOST_NAME = re.compile(
    r"^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$"
)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerConfig(_Section):
    bind: str = "127.0.0.1"
    """Address gunicorn listens on; behind nginx this stays on loopback."""
    port: int = Field(8080, ge=1, le=65535)
    workers: int = Field(2, ge=1, le=64)
    timeout_seconds: int = Field(60, ge=5, le=600)
    """gunicorn worker timeout; HSM and LDAP timeouts must stay below it."""
    tls: bool = False
    """True when clients reach the appliance over HTTPS (nginx): enables HSTS and Secure cookies."""
    max_upload_mb: int = Field(25, ge=1, le=1024)


class NetworkConfig(_Section):
    allowed_networks: list[Network] = Field(min_length=1)
    """Client networks the appliance answers (intranet and VPN ranges); all others get 403."""
    trusted_proxies: list[Network] = []
    """Direct peers whose X-Forwarded-For / X-Forwarded-Proto headers are believed (nginx)."""


class MetricsConfig(_Section):
    allowed_networks: list[Network] = []
    """Scrape addresses (Prometheus) that may read /metrics besides this host (127.0.0.1, ::1);
    they must be inside network.allowed_networks too. Everyone else gets 404."""
    token_file: Path | None = None
    """File holding a bearer token that opens /metrics from any allowed network
    (env APPLIANCE_METRICS_TOKEN; at least 32 characters)."""


class DatabaseConfig(_Section):
    url: str
    """SQLAlchemy URL: sqlite:////var/lib/appliance/appliance.db or postgresql+psycopg://..."""
    password_file: Path | None = None
    """File holding the database password, inserted into `url` (env APPLIANCE_DATABASE_PASSWORD)."""

    @field_validator("url")
    @classmethod
    def _known_backend(cls, url: str) -> str:
        if not (url.startswith("sqlite:") or url.startswith("postgresql")):
            raise ValueError("only sqlite:/// and postgresql+psycopg:// URLs are supported")
        return url


class StorageConfig(_Section):
    path: Path
    """Folder of the content-addressed blob store (documents, images)."""


class KeyAlgorithm(StrEnum):
    RSA2048 = "rsa2048"
    RSA3072 = "rsa3072"
    ECDSA_P256 = "ecdsa-p256"
    ECDSA_P384 = "ecdsa-p384"


class HsmConfig(_Section):
    module: Path = Path("/usr/lib/softhsm/libsofthsm2.so")
    """PKCS#11 module of the HSM vendor (SoftHSM2 for development and trials)."""
    token_label: str | None = None
    """Label of the token holding the appliance's keys (or give `uri`)."""
    uri: str | None = None
    """PKCS#11 URI (RFC 7512) selecting the token, e.g. pkcs11:token=appliance."""
    pin_file: Path | None = None
    """File holding the token's user PIN (env APPLIANCE_HSM_PIN)."""
    key_algorithm: KeyAlgorithm = KeyAlgorithm.RSA2048
    """Algorithm of newly generated signing keys."""
    timeout_seconds: float = Field(10.0, gt=0, le=120)
    """Longest an HSM call may take before the request fails with 503."""

    @model_validator(mode="after")
    def _token_selected(self) -> HsmConfig:
        if not self.token_label and not self.uri:
            raise ValueError("give token_label or uri to select the token")
        return self


class DirectoryProfile(StrEnum):
    OPENLDAP = "openldap"
    ACTIVE_DIRECTORY = "active_directory"


class DirectoryServer(_Section):
    url: str
    """ldap://host:389 (use start_tls) or ldaps://host:636."""

    @field_validator("url")
    @classmethod
    def _ldap_url(cls, url: str) -> str:
        if not (url.startswith("ldap://") or url.startswith("ldaps://")):
            raise ValueError("must start with ldap:// or ldaps://")
        return url


class DirectoryConfig(_Section):
    servers: list[DirectoryServer] = Field(min_length=1)
    """Tried in order; the next one is used when one is down."""
    profile: DirectoryProfile = DirectoryProfile.OPENLDAP
    start_tls: bool = True
    """Upgrade ldap:// connections with StartTLS (ldaps:// is always TLS)."""
    allow_plain: bool = False
    """Allow unencrypted LDAP; only for a lab, never in production."""
    ca_file: Path | None = Field(None, validate_default=True)
    """CA certificate(s) that the directory's TLS certificate must chain to; required
    whenever TLS is used (the operating system's trust store is never used)."""
    bind_dn: str
    """Service account used to search for people."""
    bind_password_file: Path | None = None
    """File holding the service account password (env APPLIANCE_LDAP_BIND_PASSWORD)."""
    user_base_dn: str
    user_filter: str = "(&(objectClass=inetOrgPerson)(uid={username}))"
    """Filter finding a person; {username} is replaced by the escaped login name."""
    group_base_dn: str | None = None
    role_groups: dict[Role, list[str]] = {}
    """Directory group DNs granting each role (compared as exact DNs)."""
    organisation_attribute: str | None = None
    """Attribute naming a person's organisation/department (e.g. departmentNumber)."""
    organisation_subtrees: dict[str, str] = {}
    """Subtree DN -> organisation/department name; the deepest subtree holding a person
    wins over organisation_attribute."""
    connect_timeout_seconds: float = Field(3.0, gt=0, le=60)
    receive_timeout_seconds: float = Field(5.0, gt=0, le=60)
    pool_size: int = Field(4, ge=1, le=64)

    @field_validator("user_filter")
    @classmethod
    def _has_username(cls, value: str) -> str:
        if "{username}" not in value or not (value.startswith("(") and value.endswith(")")):
            raise ValueError("must be an LDAP filter in parentheses containing {username}")
        return value

    @field_validator("ca_file")
    @classmethod
    def _ca_file_for_tls(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        servers = info.data.get("servers") or []
        tls = any(s.url.startswith("ldaps://") for s in servers) or (
            bool(servers) and info.data.get("start_tls", True)
        )
        if value is None and tls:
            raise ValueError(
                "required when TLS is used (ldaps:// or start_tls): the directory's CA certificate"
            )
        return value

    @model_validator(mode="after")
    def _tls_or_explicit_plain(self) -> DirectoryConfig:
        plain = [s.url for s in self.servers if s.url.startswith("ldap://")]
        if plain and not self.start_tls and not self.allow_plain:
            raise ValueError("ldap:// servers need start_tls: true (or allow_plain: true for a lab)")
        return self


class AddressLimit(_Section):
    network: Network
    max_failed_logins: int = Field(ge=1, le=100_000)
    """Failed sign-ins from one address of `network`, over all accounts, before that address
    is locked: raise it for a VPN or NAT egress that many people share."""


class AuthConfig(_Section):
    session_secret_file: Path | None = None
    """File holding the key that signs session cookies (env APPLIANCE_SESSION_SECRET)."""
    idle_timeout_minutes: int = Field(30, ge=1, le=24 * 60)
    absolute_timeout_hours: int = Field(12, ge=1, le=24 * 7)
    local_admin_enabled: bool = True
    """Allow the break-glass local administrator; turn off once the directory works."""
    max_failed_logins: int = Field(5, ge=1, le=100)
    """Failed logins per account from one client address before that pair is locked out; an
    account from all addresses, and one address over all accounts, may fail 4x as often
    (policy: appliance.auth.throttle)."""
    lockout_minutes: int = Field(15, ge=1, le=24 * 60)
    address_limits: list[AddressLimit] = []
    """Per-network ceilings for one address over all accounts (default 4 x max_failed_logins);
    the narrowest network containing the address wins."""
    api_token_days: int = Field(90, ge=1, le=730)
    directory_recheck_minutes: int = Field(15, ge=1, le=24 * 60)
    """A session or API token in use is re-checked against the directory this often, so a
    person disabled there loses access within this time."""
    rate_limit_storage: str = "database"
    """"database" (shared by workers and nodes through the database) or a redis:// URL."""


class PkiMode(StrEnum):
    INTERNAL = "internal"
    EXTERNAL = "external"


class PkiConfig(_Section):
    mode: PkiMode = PkiMode.INTERNAL
    """internal: the appliance's own CA issues certificates; external: CSRs for an enterprise CA."""
    organisation: str = "Example Corp"
    """O= of the CA certificates."""
    country: str = Field("CN", min_length=2, max_length=2)
    root_validity_years: int = Field(20, ge=1, le=50)
    issuing_validity_years: int = Field(10, ge=1, le=30)
    certificate_validity_days: int = Field(730, ge=1, le=3650)
    tsa_validity_days: int | None = Field(None, ge=30, le=3650)
    """Life of a timestamp authority certificate; None: until the issuing CA ends. A new one
    is issued ahead of its end, so archive timestamps can be renewed with it in time."""
    crl_validity_hours: int = Field(24, ge=1, le=24 * 31)


class TsaMode(StrEnum):
    INTERNAL = "internal"
    EXTERNAL = "external"
    NONE = "none"


class TsaConfig(_Section):
    mode: TsaMode = TsaMode.INTERNAL
    url: str | None = None
    """Timestamp authority URL when mode is external (must be inside the intranet)."""

    @model_validator(mode="after")
    def _url_for_external(self) -> TsaConfig:
        if self.mode is TsaMode.EXTERNAL and not self.url:
            raise ValueError("url is required when mode is external")
        return self


class MailConfig(_Section):
    enabled: bool = False
    host: str = "localhost"
    port: int = Field(25, ge=1, le=65535)
    starttls: bool = True
    ca_file: Path | None = None
    """CA certificate(s) that signed the mail server's certificate (the enterprise CA);
    without it STARTTLS trusts the operating system's store."""
    username: str | None = None
    password_file: Path | None = None
    """File holding the SMTP password (env APPLIANCE_MAIL_PASSWORD)."""
    from_address: str = "esign@localhost"


class UploadConfig(_Section):
    max_bytes: int = Field(25 * 1024 * 1024, ge=64 * 1024, le=512 * 1024 * 1024)
    """Largest PDF accepted as a contract (the web server's body limit follows it)."""
    max_pages: int = Field(500, ge=1, le=10_000)
    parser_memory_mb: int = Field(1024, ge=128, le=16 * 1024)
    """Address-space limit of the subprocess that parses and rewrites an upload."""
    parser_seconds: int = Field(20, ge=1, le=600)
    """CPU and wall-clock limit of that subprocess."""


class CodeChannel(StrEnum):
    EMAIL = "email"
    TOTP = "totp"
    """An authenticator app (RFC 6238) the person has enrolled; falls back to e-mail without one."""


class CodesConfig(_Section):
    """Verification codes that confirm a signer's intent before each signature."""

    channel: CodeChannel = CodeChannel.EMAIL
    lifetime_seconds: int = Field(300, ge=60, le=600)
    attempts: int = Field(5, ge=1, le=10)
    digits: int = Field(6, ge=6, le=8)
    per_signer_per_hour: int = Field(10, ge=1, le=1000)
    per_address_per_hour: int = Field(60, ge=1, le=100_000)


class ContractsConfig(_Section):
    default_deadline_days: int = Field(30, ge=1, le=3650)
    reminder_days: int = Field(2, ge=1, le=60)
    """Parties still to sign are reminded this many days before the deadline."""


class RetentionConfig(_Section):
    draft_delete_months: int = Field(12, ge=1)
    """Drafts never sent are deleted this long after creation."""
    closed_delete_months: int = Field(12, ge=1)
    """Withdrawn, rejected and expired contracts are deleted this long after that state."""
    archive_after_months: int = Field(60, ge=60)
    """Completed, voided and ended contracts are archived this long after signing (>= 5 years)."""
    notice_days: int = Field(30, ge=1, le=365)
    """The initiator and parties are told this long before a deletion, so they can download."""
    timestamp_renew_days: int = Field(90, ge=7, le=1000)
    """A finished contract's archive timestamp is renewed this long before a certificate it
    relies on expires (PAdES B-LTA)."""
    weak_digests: list[str] = ["md5", "sha1"]
    """Digest algorithms no longer trusted: a timestamp made with one is renewed at once."""

    @field_validator("weak_digests")
    @classmethod
    def _not_the_one_in_use(cls, value: list[str]) -> list[str]:
        names = [name.strip().lower() for name in value]
        if "sha256" in names:
            # every renewal would itself be weak, and renewed again the next day
            raise ValueError("sha256 is what the appliance signs and timestamps with; it cannot be weak here")
        return names


class PrivacyConfig(_Section):
    request_working_days: int = Field(15, ge=1, le=90)
    """A request about personal data is answered within this many working days (Monday to Friday)."""


class MobileConfig(_Section):
    """What the mobile app is told (`/.well-known/esign-configuration`) and handed."""

    minimum_client_version: str = Field("1.0.0", pattern=r"^\d{1,4}\.\d{1,4}\.\d{1,4}$")
    """Apps older than this (major.minor.patch) ask their user to update before signing in."""
    tls_certificate_file: Path | None = None
    """The TLS certificate (PEM) nginx serves on the private-cloud address: its sha256
    fingerprint is published for apps that pin it. None behind plain HTTP (development)."""
    wireguard_clients_dir: Path | None = None
    """Where the WireGuard role writes one client configuration per person (`<login>.conf`),
    readable by the appliance: each person collects theirs once from "Mobile access"."""


class WebhooksConfig(_Section):
    """Where contract events may be delivered: the integration hosts (ERP, OA) and nothing else,
    so that the appliance cannot be used to reach arbitrary intranet hosts."""

    allowed_hosts: list[str] = []
    """Host names (exact) or networks (CIDR) an endpoint may be on; a named host is also
    reached only at addresses it resolves to in one of the networks, when networks are listed.
    Empty: no endpoint can be registered."""
    allow_http: bool = False
    """Deliver to http:// endpoints too (a test rig); otherwise https:// only."""
    ca_file: Path | None = None
    """The CA certificate(s) the endpoints' TLS certificates must chain to (the enterprise
    CA); required for https:// endpoints (the operating system's trust store is never used)."""
    timeout_seconds: int = Field(10, ge=1, le=60)
    keep_log_days: int = Field(90, ge=1, le=3650)
    """Delivered and given-up deliveries stay in the delivery log this long."""

    @field_validator("allowed_hosts")
    @classmethod
    def _hosts_or_networks(cls, value: list[str]) -> list[str]:
        cleaned = []
        for entry in value:
            entry = entry.strip().lower()
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                if not _HOST_NAME.match(entry):
                    raise ValueError(
                        f"{entry!r} is neither a host name nor a network (CIDR), e.g. erp.corp.example "
                        "or 10.20.0.0/16"
                    ) from None
            cleaned.append(entry)
        return cleaned


class LocaleConfig(_Section):
    default: Literal["en", "zh_Hans_CN"] = "en"


class Secrets(BaseModel):
    """Secrets resolved from files or the environment; never read from the YAML."""

    model_config = ConfigDict(frozen=True)
    session_secret: SecretStr | None = None
    hsm_pin: SecretStr | None = None
    ldap_bind_password: SecretStr | None = None
    database_password: SecretStr | None = None
    mail_password: SecretStr | None = None
    metrics_token: SecretStr | None = None


class AppConfig(_Section):
    private_cloud_address: str
    """Address staff type into the mobile app (reachable over the VPN), e.g. https://esign.corp.example."""
    server: ServerConfig = ServerConfig()
    network: NetworkConfig
    metrics: MetricsConfig = MetricsConfig()
    database: DatabaseConfig
    storage: StorageConfig
    hsm: HsmConfig | None = None
    directory: DirectoryConfig | None = None
    auth: AuthConfig = AuthConfig()
    pki: PkiConfig = PkiConfig()
    tsa: TsaConfig = TsaConfig()
    mail: MailConfig = MailConfig()
    uploads: UploadConfig = UploadConfig()
    codes: CodesConfig = CodesConfig()
    contracts: ContractsConfig = ContractsConfig()
    retention: RetentionConfig = RetentionConfig()
    privacy: PrivacyConfig = PrivacyConfig()
    locale: LocaleConfig = LocaleConfig()
    mobile: MobileConfig = MobileConfig()
    webhooks: WebhooksConfig = WebhooksConfig()
    secrets: Secrets = Secrets()

    @field_validator("private_cloud_address")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not (value.startswith("https://") or value.startswith("http://")):
            raise ValueError("must be an http(s):// URL, e.g. https://esign.corp.example")
        return value.rstrip("/")


# (key path shown in errors, env variable, how to find the file setting)
_SECRET_SOURCES: tuple[tuple[str, str, str, tuple[str, str]], ...] = (
    (
        "session_secret",
        "APPLIANCE_SESSION_SECRET",
        "auth.session_secret_file",
        ("auth", "session_secret_file"),
    ),
    ("hsm_pin", "APPLIANCE_HSM_PIN", "hsm.pin_file", ("hsm", "pin_file")),
    (
        "ldap_bind_password",
        "APPLIANCE_LDAP_BIND_PASSWORD",
        "directory.bind_password_file",
        ("directory", "bind_password_file"),
    ),
    (
        "database_password",
        "APPLIANCE_DATABASE_PASSWORD",
        "database.password_file",
        ("database", "password_file"),
    ),
    ("mail_password", "APPLIANCE_MAIL_PASSWORD", "mail.password_file", ("mail", "password_file")),
    ("metrics_token", "APPLIANCE_METRICS_TOKEN", "metrics.token_file", ("metrics", "token_file")),
)


def load_config(path: Path, environ: Mapping[str, str] | None = None) -> AppConfig:
    """Read, validate and resolve the configuration at `path`.

    :raises ConfigError: listing every problem, one `key: problem` per line.
    """
    environ = os.environ if environ is None else environ
    raw = _read_yaml(path)
    if "secrets" in raw:
        raise ConfigError(["secrets: not allowed in the YAML; use the *_file keys or environment variables"])
    try:
        cfg = AppConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError([_describe(err) for err in exc.errors()]) from exc
    secrets, problems = _resolve_secrets(cfg, environ)
    reported = {p.split(":", 1)[0] for p in problems}
    problems += [p for p in _required_secrets(cfg, secrets) if p.split(":", 1)[0] not in reported]
    problems += _timeout_problems(cfg)
    if problems:
        raise ConfigError(problems)
    return cfg.model_copy(update={"secrets": secrets})


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError([f"{path}: config file not found (run `appliance init` to write one)"]) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{path}: cannot read the config file ({exc.__class__.__name__})"]) from exc
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError([f"{path}: not valid YAML{where}"]) from exc
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError([f"{path}: the top level must be a mapping of sections"])
    return raw


def _describe(err: Mapping[str, Any]) -> str:
    key = ".".join(str(part) for part in err["loc"]) or "(top level)"
    message = str(err["msg"])
    if err["type"] == "missing":
        message = "required key is missing"
    elif err["type"] == "extra_forbidden":
        message = "unknown key (check the spelling against config.example.yaml)"
    message = message.removeprefix("Value error, ")
    return f"{key}: {message}"


def _resolve_secrets(cfg: AppConfig, environ: Mapping[str, str]) -> tuple[Secrets, list[str]]:
    values: dict[str, SecretStr] = {}
    problems: list[str] = []
    for name, env_name, key, (section, attr) in _SECRET_SOURCES:
        from_env = environ.get(env_name)
        if from_env:
            values[name] = SecretStr(from_env)
            continue
        section_cfg = getattr(cfg, section)
        secret_file = getattr(section_cfg, attr) if section_cfg is not None else None
        if secret_file is None:
            continue
        try:
            content = Path(secret_file).read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            problems.append(f"{key}: file {secret_file} does not exist")
            continue
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(f"{key}: file {secret_file} is not readable ({exc.__class__.__name__})")
            continue
        if not content:
            problems.append(f"{key}: file {secret_file} is empty")
            continue
        values[name] = SecretStr(content)
    return Secrets(**values), problems


def _required_secrets(cfg: AppConfig, secrets: Secrets) -> list[str]:
    problems = []
    if secrets.session_secret is None:
        problems.append("auth.session_secret_file: required (or set APPLIANCE_SESSION_SECRET)")
    elif len(secrets.session_secret.get_secret_value()) < 32:
        problems.append("auth.session_secret_file: the session secret must be at least 32 characters")
    if secrets.metrics_token is not None and len(secrets.metrics_token.get_secret_value()) < 32:
        problems.append("metrics.token_file: the metrics token must be at least 32 characters")
    if cfg.hsm is not None and secrets.hsm_pin is None:
        problems.append("hsm.pin_file: required (or set APPLIANCE_HSM_PIN)")
    if cfg.directory is not None and secrets.ldap_bind_password is None:
        problems.append("directory.bind_password_file: required (or set APPLIANCE_LDAP_BIND_PASSWORD)")
    return problems


HSM_CALLS_PER_REQUEST_BUDGET = 3
"""One HSM operation may wait for the session lock, run, and run once more after a reopen,
each up to hsm.timeout_seconds."""


def _timeout_problems(cfg: AppConfig) -> list[str]:
    # a request stuck on the HSM must fail with 503 before gunicorn kills the worker
    if cfg.hsm is None:
        return []
    worst = cfg.hsm.timeout_seconds * HSM_CALLS_PER_REQUEST_BUDGET
    if worst >= cfg.server.timeout_seconds:
        return [
            f"hsm.timeout_seconds: {cfg.hsm.timeout_seconds:g} s allows an HSM call to take up to "
            f"{worst:g} s (lock wait, call, one retry), not below server.timeout_seconds "
            f"({cfg.server.timeout_seconds} s); lower it or raise server.timeout_seconds"
        ]
    return []


def config_path_from_env(environ: Mapping[str, str] | None = None) -> Path:
    environ = os.environ if environ is None else environ
    return Path(environ.get(CONFIG_ENV, str(DEFAULT_CONFIG_PATH)))
