# shellcheck shell=bash
# dev-up step (sourced; $DEV_DIR, $VENV and APPLIANCE_CONFIG set, the venv on PATH): a mail
# sink on 127.0.0.1 (aiosmtpd) that keeps every message in the Maildir $DEV_DIR/mail, and the
# appliance's mail section pointing at it, so verification codes and notices reach someone.
# `installer/dev-mail` shows the newest messages. Idempotent: a running sink is left running.

MAIL_DIR="$DEV_DIR/mail"
MAIL_PORT="${APPLIANCE_DEV_SMTP_PORT:-8025}"
mkdir -p "$MAIL_DIR"/{tmp,new,cur}  # a Maildir
chmod 700 "$MAIL_DIR"
if ! { [ -s "$MAIL_DIR/sink.pid" ] && kill -0 "$(cat "$MAIL_DIR/sink.pid")" 2>/dev/null; }; then
  log "mail sink on 127.0.0.1:$MAIL_PORT (messages in $MAIL_DIR)"
  nohup "$VENV/bin/python" -m aiosmtpd -n -l "127.0.0.1:$MAIL_PORT" \
    -c aiosmtpd.handlers.Mailbox "$MAIL_DIR" >"$MAIL_DIR/sink.log" 2>&1 &
  echo $! >"$MAIL_DIR/sink.pid"
  for _ in $(seq 1 50); do
    "$VENV/bin/python" -c "import socket,sys; socket.create_connection(('127.0.0.1', int(sys.argv[1])), 1)" \
      "$MAIL_PORT" 2>/dev/null && break
    sleep 0.2
  done
fi

"$VENV/bin/python" - "$APPLIANCE_CONFIG" "$MAIL_PORT" <<'PY'
import sys
from pathlib import Path

import yaml

config_path, port = sys.argv[1:3]
path = Path(config_path)
cfg = yaml.safe_load(path.read_text()) or {}
wanted = {
    "enabled": True,
    "host": "127.0.0.1",
    "port": int(port),
    "starttls": False,  # the sink is on loopback only
    "from_address": "esign@localhost",
}
if cfg.get("mail") != wanted:
    cfg["mail"] = wanted
    path.write_text(yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True))
    print(f"{path}: mail section written")
PY
