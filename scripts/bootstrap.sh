#!/usr/bin/env bash
# Installs what Boomerang needs on Debian 12, and nothing that is already there:
#   - Debian packages: Kamailio with its Python, SQLite, MySQL, JSON and extra modules, rtpengine,
#     Redis (keeps rtpengine's calls across its restarts);
#     with "test", also the test tools: sipp, Kannel with its fake SMSC, tcpdump (benchmarks), Chromium
#     (browser tests, driven by Playwright: no browser is downloaded);
#   - a virtualenv in .venv made from Debian's /usr/bin/python3 (the interpreter Kamailio embeds,
#     so the KEMI script imports the same packages), with the project installed in it.
# Usage: scripts/bootstrap.sh run|test
set -euo pipefail
cd "$(dirname "$0")/.."

purpose=${1:-run}
packages=(
    kamailio kamailio-python3-modules kamailio-sqlite-modules kamailio-mysql-modules
    kamailio-json-modules kamailio-utils-modules kamailio-extra-modules
    rtpengine-daemon redis-server python3-venv python3-dev espeak-ng sox
)
if [ "$purpose" = test ]; then
    packages+=(sip-tester tcpdump kannel kannel-extras chromium)
fi

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

missing=()
for package in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$package")
    fi
done

if [ ${#missing[@]} -gt 0 ]; then
    echo "installing Debian packages: ${missing[*]}"
    # Do not let the packages start their own Kamailio or rtpengine on our ports during install.
    policy=/usr/sbin/policy-rc.d
    created_policy=no
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy" >/dev/null
        as_root chmod 755 "$policy"
        created_policy=yes
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
    status=0
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" || status=$?
    [ "$created_policy" = yes ] && as_root rm -f "$policy"
    [ "$status" -eq 0 ] || { echo "bootstrap: apt-get install failed" >&2; exit "$status"; }
    # On a systemd host the packages' own services would hold 5060 and 2223: the platform runs its own.
    if [ -d /run/systemd/system ]; then
        for unit in kamailio rtpengine-daemon; do
            as_root systemctl disable --now "$unit" >/dev/null 2>&1 || true
        done
    fi
fi

venv=.venv
if [ ! -x "$venv/bin/python" ] || ! grep -q '^home = /usr/bin$' "$venv/pyvenv.cfg" 2>/dev/null; then
    echo "creating the virtualenv in $venv from /usr/bin/python3"
    rm -rf "$venv"
    /usr/bin/python3 -m venv "$venv"
    "$venv/bin/pip" install -q --upgrade "pip>=24"
fi

# Reinstall only when the project's requirements changed.
extras=""
[ "$purpose" = test ] && extras="[test]"
stamp="$venv/.installed-$purpose"
wanted=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
    echo "installing Python packages into $venv"
    "$venv/bin/pip" install -q -e ".$extras"
    echo "$wanted" > "$stamp"
fi
