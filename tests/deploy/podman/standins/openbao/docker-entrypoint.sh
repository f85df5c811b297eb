#!/bin/sh
# The stand-in's docker-entrypoint.sh: `server` runs `bao server -config=/openbao/config`, as
# the openbao user (root only owns the data folders to it first); anything else runs as given.
set -eu
if [ "${1:-}" = server ]; then
    shift
    set -- bao server -config=/openbao/config "$@"
fi
if [ "${1:-}" = bao ] && [ "$(id -u)" = 0 ]; then
    chown -R openbao:openbao /openbao/file /openbao/logs
    exec setpriv --reuid=openbao --regid=openbao --init-groups "$@"
fi
exec "$@"
