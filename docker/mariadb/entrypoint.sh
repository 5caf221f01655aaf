#!/bin/sh
# Starts MariaDB for Boomerang: initialises an empty data directory, then runs the server with an
# init file that (re)creates the application's database and account from the environment, so a
# changed password takes effect at the next start. Runs as the mysql user.
set -eu

: "${MARIADB_DATABASE:=boomerang}"
: "${MARIADB_USER:=boomerang}"
: "${MARIADB_PASSWORD:?set MARIADB_PASSWORD: the password of the application account}"
: "${MARIADB_USER_HOST:=%}"
: "${MARIADB_BIND:=127.0.0.1}"
: "${MARIADB_PORT:=3306}"

datadir=/var/lib/mysql
if [ ! -d "$datadir/mysql" ]; then
    echo "boomerang-mariadb: empty data directory, initialising it"
    # Administration is by unix socket only (root and mysql): no administrator password exists.
    mariadb-install-db --datadir="$datadir" --auth-root-authentication-method=socket \
        --skip-test-db >/dev/null
fi

quote() {  # an SQL string literal
    printf "'%s'" "$(printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e "s/'/''/g")"
}
identifier() {  # a quoted SQL identifier
    printf '`%s`' "$(printf '%s' "$1" | sed -e 's/`/``/g')"
}
account="$(quote "$MARIADB_USER")@$(quote "$MARIADB_USER_HOST")"
init=/run/mysqld/boomerang-init.sql
umask 077
cat > "$init" <<SQL
CREATE DATABASE IF NOT EXISTS $(identifier "$MARIADB_DATABASE") CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
CREATE USER IF NOT EXISTS $account IDENTIFIED BY $(quote "$MARIADB_PASSWORD");
ALTER USER $account IDENTIFIED BY $(quote "$MARIADB_PASSWORD");
GRANT ALL PRIVILEGES ON $(identifier "$MARIADB_DATABASE").* TO $account;
SQL

exec mariadbd --datadir="$datadir" --bind-address="$MARIADB_BIND" --port="$MARIADB_PORT" \
    --socket=/run/mysqld/mysqld.sock --init-file="$init" "$@"
