#!/usr/bin/env bash
# Makes sure a MariaDB server answers on 127.0.0.1:3306 for the tests: installs it where it is
# missing, starts it where it is stopped. Prints the SQLAlchemy URL the tests should use: root
# without a password where that works over TCP, else a test account created for the purpose.
set -euo pipefail

host=127.0.0.1
port=3306

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

answers() {
    mariadb-admin --host=$host --port=$port --user="$1" ${2:+--password="$2"} --connect-timeout=2 ping >/dev/null 2>&1
}

if ! command -v mariadbd >/dev/null 2>&1 && [ ! -x /usr/sbin/mariadbd ]; then
    echo "installing mariadb-server" >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q mariadb-server mariadb-client >&2
fi

if ! mariadb-admin --connect-timeout=2 ping >/dev/null 2>&1 && ! answers root ""; then
    echo "starting MariaDB" >&2
    if [ -d /run/systemd/system ]; then
        as_root systemctl start mariadb >&2
    else
        as_root mkdir -p /run/mysqld
        as_root chown mysql:mysql /run/mysqld 2>/dev/null || true
        as_root start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- --user=mysql
    fi
    for _ in $(seq 60); do
        mariadb-admin --connect-timeout=1 ping >/dev/null 2>&1 && break
        answers root "" && break
        sleep 0.5
    done
fi

if answers root ""; then
    echo "mysql+pymysql://root@$host:$port/test"
    exit 0
fi

# Debian's root account authenticates by unix socket only: make a test account that may create
# and drop the tests' own databases (named boomerang_t_...).
user=boomerang_test
password=boomerang_test
as_root mariadb --protocol=socket <<SQL >&2
CREATE USER IF NOT EXISTS '$user'@'localhost' IDENTIFIED BY '$password';
CREATE USER IF NOT EXISTS '$user'@'127.0.0.1' IDENTIFIED BY '$password';
GRANT ALL PRIVILEGES ON \`boomerang\\_t\\_%\`.* TO '$user'@'localhost';
GRANT ALL PRIVILEGES ON \`boomerang\\_t\\_%\`.* TO '$user'@'127.0.0.1';
SQL
if ! answers "$user" "$password"; then
    echo "ensure-mariadb: MariaDB does not answer on $host:$port" >&2
    exit 1
fi
echo "mysql+pymysql://$user:$password@$host:$port/test"
