#!/bin/sh
# Entrypoint of the reid-hpo services of docker-compose.yml: the database password from the
# compose secret into libpq's PGPASSWORD (never on a command line, in a URL or printed), then
# `reid-hpo ARGS`. $REID_HPO_STORAGE names the database without the password.
set -eu
secret="${REID_HPO_PASSWORD_FILE:-/run/secrets/postgres_password}"
if ! [ -r "$secret" ]; then
    echo "Error: cannot read the database password in $secret (uid $(id -u)): on the host," \
        "chmod 644 secrets/postgres_password (its folder secrets/ stays mode 700)" >&2
    exit 2
fi
PGPASSWORD=$(cat -- "$secret")
export PGPASSWORD
exec reid-hpo "$@"
