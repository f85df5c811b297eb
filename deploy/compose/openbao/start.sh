#!/bin/sh
# OpenBao's server for deploy/compose/compose.yaml, unsealed again after every (re)start with
# the key openbao-init keeps in the openbao-keys volume: a restart needs no operator. The very
# first start waits, sealed and uninitialised, for openbao-init.
set -eu

KEYS=/openbao/keys
KEY=$KEYS/unseal.key
# openbao-init runs as the MovingData image's user (deploy/Dockerfile) and writes the volume.
INIT_UID=10001

mkdir -p "$KEYS"
chown "$INIT_UID:$INIT_UID" "$KEYS"
chmod 700 "$KEYS"

# The image's entry point: it drops root for the openbao user before starting the server.
docker-entrypoint.sh server &
server=$!
trap 'kill -TERM "$server" 2>/dev/null; wait "$server"; exit $?' INT TERM

(
  # bao status: 0 unsealed, 2 sealed (or not initialised yet), 1 unreachable.
  while kill -0 "$server" 2>/dev/null; do
    state=0
    bao status >/dev/null 2>&1 || state=$?
    [ "$state" -eq 0 ] && exit 0
    if [ "$state" -eq 2 ] && [ -s "$KEY" ]; then
      # The key is an argument for an instant, visible inside this container only.
      bao operator unseal "$(cat "$KEY")" >/dev/null 2>&1 || true
    fi
    sleep 2
  done
) &

wait "$server"
