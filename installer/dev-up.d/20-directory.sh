# shellcheck shell=bash
# Demo directory for installer/dev-up: a slapd on 127.0.0.1 seeded with a demo company
# (departments, 20 people, a group per role), StartTLS with a dev CA made once, and the
# appliance config gaining its `directory` section. Sourced by installer/dev-up with
# DEV_DIR, VENV and APPLIANCE_CONFIG set; idempotent.

LDAP_DIR="$DEV_DIR/slapd"
LDAP_PORT="${APPLIANCE_DEV_LDAP_PORT:-3389}"
LDAP_SUFFIX="dc=demo,dc=example"
DEMO_DIR="$REPO_ROOT/installer/demo"

log "demo directory: slapd on 127.0.0.1:$LDAP_PORT ($LDAP_DIR)"
mkdir -p "$LDAP_DIR/db" "$LDAP_DIR/tls" "$DEV_DIR/secrets"
chmod 700 "$LDAP_DIR"

# Secrets, made once.
[ -s "$LDAP_DIR/root-password" ] || (umask 077; openssl rand -base64 24 > "$LDAP_DIR/root-password")
[ -s "$DEV_DIR/secrets/ldap-bind-password" ] || (umask 077; openssl rand -base64 24 > "$DEV_DIR/secrets/ldap-bind-password")
[ -s "$LDAP_DIR/demo-password" ] || (umask 077; printf 'Demo-%s' "$(openssl rand -hex 4)" > "$LDAP_DIR/demo-password")

# Dev CA and server certificate for 127.0.0.1, made once.
if [ ! -s "$LDAP_DIR/tls/server.pem" ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
    -subj "/CN=Appliance dev directory CA" -keyout "$LDAP_DIR/tls/ca.key" -out "$LDAP_DIR/tls/ca.pem" 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=127.0.0.1" \
    -keyout "$LDAP_DIR/tls/server.key" -out "$LDAP_DIR/tls/server.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' > "$LDAP_DIR/tls/ext.cnf"
  openssl x509 -req -in "$LDAP_DIR/tls/server.csr" -CA "$LDAP_DIR/tls/ca.pem" -CAkey "$LDAP_DIR/tls/ca.key" \
    -CAcreateserial -days 3650 -extfile "$LDAP_DIR/tls/ext.cnf" -out "$LDAP_DIR/tls/server.pem" 2>/dev/null
  chmod 600 "$LDAP_DIR/tls/"*.key
fi

cat > "$LDAP_DIR/slapd.conf" <<CONF
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile $LDAP_DIR/slapd.pid
argsfile $LDAP_DIR/slapd.args
TLSCACertificateFile $LDAP_DIR/tls/ca.pem
TLSCertificateFile $LDAP_DIR/tls/server.pem
TLSCertificateKeyFile $LDAP_DIR/tls/server.key
database mdb
suffix "$LDAP_SUFFIX"
rootdn "cn=admin,$LDAP_SUFFIX"
rootpw $(slappasswd -s "$(cat "$LDAP_DIR/root-password")")
directory $LDAP_DIR/db
index objectClass,uid,member eq
access to attrs=userPassword by self =xw by anonymous auth by * none
access to * by users read by * none
CONF
chmod 600 "$LDAP_DIR/slapd.conf"

# Seed once (offline, before slapd runs), with hashed passwords.
if [ ! -e "$LDAP_DIR/seeded" ]; then
  demo_hash="$(slappasswd -s "$(cat "$LDAP_DIR/demo-password")")"
  service_hash="$(slappasswd -s "$(cat "$DEV_DIR/secrets/ldap-bind-password")")"
  sed -e "s|@DEMO_PASSWORD@|$demo_hash|" -e "s|@SERVICE_PASSWORD@|$service_hash|" \
    "$DEMO_DIR/directory.ldif" > "$LDAP_DIR/seed.ldif"
  slapadd -q -f "$LDAP_DIR/slapd.conf" -b "$LDAP_SUFFIX" -l "$LDAP_DIR/seed.ldif"
  rm -f "$LDAP_DIR/seed.ldif"
  touch "$LDAP_DIR/seeded"
fi

# Start slapd unless it already runs (it forks into the background and keeps its pidfile).
if ! { [ -s "$LDAP_DIR/slapd.pid" ] && kill -0 "$(cat "$LDAP_DIR/slapd.pid")" 2>/dev/null; }; then
  slapd -h "ldap://127.0.0.1:$LDAP_PORT/" -f "$LDAP_DIR/slapd.conf"
  for _ in $(seq 1 50); do
    LDAPTLS_CACERT="$LDAP_DIR/tls/ca.pem" ldapwhoami -x -ZZ -H "ldap://127.0.0.1:$LDAP_PORT" \
      -D "cn=svc-esign,ou=services,$LDAP_SUFFIX" -y "$DEV_DIR/secrets/ldap-bind-password" >/dev/null 2>&1 && break
    sleep 0.2
  done
fi

# The appliance config gains (or refreshes) its directory section.
"$VENV/bin/python" - "$APPLIANCE_CONFIG" "$LDAP_DIR" "$LDAP_PORT" "$LDAP_SUFFIX" "$DEV_DIR" <<'PY'
import sys
from pathlib import Path

import yaml

config_path, ldap_dir, port, suffix, dev_dir = sys.argv[1:6]
path = Path(config_path)
cfg = yaml.safe_load(path.read_text()) or {}
groups = f"ou=groups,{suffix}"
role_groups = {"employee": [f"cn=esign-employees,{groups}"]}
for role in ("initiator", "approver", "seal_keeper", "org_admin", "archive_admin", "auditor", "system_admin"):
    role_groups[role] = [f"cn=esign-{role.replace('_', '-')}s,{groups}"]
wanted = {
    "servers": [{"url": f"ldap://127.0.0.1:{port}"}],
    "profile": "openldap",
    "start_tls": True,
    "ca_file": f"{ldap_dir}/tls/ca.pem",
    "bind_dn": f"cn=svc-esign,ou=services,{suffix}",
    "bind_password_file": f"{dev_dir}/secrets/ldap-bind-password",
    "user_base_dn": f"ou=people,{suffix}",
    "user_filter": "(&(objectClass=inetOrgPerson)(|(uid={username})(mail={username})))",
    "group_base_dn": groups,
    "role_groups": role_groups,
    "organisation_attribute": "departmentNumber",
    "connect_timeout_seconds": 2,
    "receive_timeout_seconds": 5,
}
if cfg.get("directory") != wanted:
    cfg["directory"] = wanted
    path.write_text(yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True))
    print(f"{path}: directory section written")
PY

{
  cat "$DEMO_DIR/demo-people.txt"
  echo
  echo "  password for every demo person: $(cat "$LDAP_DIR/demo-password")"
  echo "  sign in at http://127.0.0.1:${PORT:-8080}/login"
} > "$DEV_DIR/demo-logins.txt"
chmod 600 "$DEV_DIR/demo-logins.txt"
