# shellcheck shell=bash
# dev-up step (sourced; $DEV_DIR, $VENV and APPLIANCE_CONFIG set, the venv on PATH):
# a SoftHSM2 token of our own under $DEV_DIR/softhsm, then the appliance CA in it.
# Idempotent: an existing token and an initialised PKI are left as they are.

SOFTHSM_DIR="$DEV_DIR/softhsm"
mkdir -p "$SOFTHSM_DIR/tokens"
chmod 700 "$SOFTHSM_DIR"
if [ ! -f "$SOFTHSM_DIR/softhsm2.conf" ]; then
  cat >"$SOFTHSM_DIR/softhsm2.conf" <<CONF
directories.tokendir = $SOFTHSM_DIR/tokens
objectstore.backend = file
log.level = ERROR
CONF
fi
# the rest of dev-up and the server it starts use this token directory
export SOFTHSM2_CONF="$SOFTHSM_DIR/softhsm2.conf"

log "SoftHSM2 token (SOFTHSM2_CONF=$SOFTHSM2_CONF)"
appliance hsm init-token --so-pin-file "$SOFTHSM_DIR/so-pin"
appliance hsm status
log "appliance CA in the HSM"
appliance pki init --export-dir "$DEV_DIR/pki"
