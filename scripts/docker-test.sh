#!/usr/bin/env bash
# `make docker-test`: builds the container images (docker/) and runs the compose stack with podman,
# then checks it from outside (docker/test_stack.py): SIP OPTIONS, an access-number trigger called
# back through a simulated carrier, the portal and a sign-in, data kept across a database restart,
# a service restarted by its restart policy. The stack is stopped and removed at the end, also on
# failure. Installs what is missing: podman, runc, debootstrap, the test tools, podman-compose.
#
# No image registry is needed: the base image debian:bookworm is made locally with debootstrap.
# Runs as root (rootful podman; host networking). Work files in var/docker-test.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
    exec sudo --preserve-env=PATH "$0" "$@"
fi

work=var/docker-test
project=boomerangtest
base_image=docker.io/library/debian:bookworm
started=$(date +%s)
mkdir -p "$work"

# --- tools ----------------------------------------------------------------------------------------
missing=()
for package in podman runc debootstrap; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$package")
    fi
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing Debian packages: ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
scripts/bootstrap.sh test  # the project's virtualenv with pytest, and sipp

compose_venv=$work/venv
if [ ! -x "$compose_venv/bin/podman-compose" ]; then
    echo "installing podman-compose into $compose_venv"
    rm -rf "$compose_venv"
    /usr/bin/python3 -m venv "$compose_venv"
    "$compose_venv/bin/pip" install -q "podman-compose>=1.2,<2"
fi

# podman on this kind of host: runc (crun refuses some cgroup layouts), and no default ulimits (the
# default nproc/nofile limits can be refused inside a container host).
cat > "$work/containers.conf" <<'EOF'
[containers]
default_ulimits = []

[engine]
runtime = "runc"
EOF
export CONTAINERS_CONF="$PWD/$work/containers.conf"

# --- cleanup, whatever happens --------------------------------------------------------------------
remove_stack() {
    local ids
    ids=$(podman ps --all --quiet --filter "label=com.docker.compose.project=$project" 2>/dev/null || true)
    [ -z "$ids" ] || podman rm --force --depend --time 10 $ids >/dev/null 2>&1 || true
    ids=$(podman volume ls --quiet --filter "label=com.docker.compose.project=$project" 2>/dev/null || true)
    [ -z "$ids" ] || podman volume rm --force $ids >/dev/null 2>&1 || true
}
rootfs=""
finish() {
    local status=$?
    [ -z "$rootfs" ] || rm -rf "$rootfs"
    remove_stack
    echo "docker-test: $([ $status -eq 0 ] && echo passed || echo FAILED) in $(($(date +%s) - started)) s"
    exit $status
}
tests=""
stop_tests() {  # Ctrl-C for the checks: they stop and remove their stack (bounded), then we make sure
    [ -n "$tests" ] || return 0
    kill -INT "$tests" 2>/dev/null || true
    for _ in $(seq 120); do
        kill -0 "$tests" 2>/dev/null || break
        sleep 1
    done
}
trap finish EXIT
trap 'stop_tests; exit 130' INT TERM
remove_stack  # a previous run that was killed

# --- the base image: Debian 12 made here, as no registry is reachable --------------------------------
if ! podman image exists "$base_image"; then
    echo "making the base image $base_image with debootstrap"
    rootfs=$(mktemp -d "$PWD/$work/rootfs.XXXXXX")
    debootstrap --variant=minbase bookworm "$rootfs" http://deb.debian.org/debian > "$work/debootstrap.log" 2>&1 \
        || { tail -20 "$work/debootstrap.log"; exit 1; }
    # The sources of the official image: the release, its updates and security updates.
    rm -f "$rootfs/etc/apt/sources.list"
    cat > "$rootfs/etc/apt/sources.list.d/debian.sources" <<'EOF'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar -C "$rootfs" -c . | podman import --quiet - "$base_image" >/dev/null
    rm -rf "$rootfs"
    rootfs=""
fi

# --- the images -----------------------------------------------------------------------------------
build=(podman build --pull=never --network host --format docker)  # docker format keeps HEALTHCHECK
# pip in the build trusts what this host trusts (a TLS-intercepting proxy's CA included).
[ -s /etc/ssl/certs/ca-certificates.crt ] && build+=(--secret id=ca_bundle,src=/etc/ssl/certs/ca-certificates.crt)
echo "building the images boomerang and boomerang-mariadb (log in $work/build-*.log)"
"${build[@]}" -f docker/Dockerfile -t boomerang:latest . > "$work/build-boomerang.log" 2>&1 \
    || { tail -30 "$work/build-boomerang.log"; exit 1; }
"${build[@]}" -f docker/mariadb/Dockerfile -t boomerang-mariadb:latest docker/mariadb > "$work/build-mariadb.log" 2>&1 \
    || { tail -30 "$work/build-mariadb.log"; exit 1; }
# Layers of earlier builds of these images, now replaced.
podman image prune --force --filter label=io.boomerang.image >/dev/null 2>&1 || true

# --- up, check, down ------------------------------------------------------------------------------
echo "starting the stack and checking it (container logs in $work/logs)"
# In the background, so that a signal reaches this script's trap while the checks run.
DOCKER_TEST_COMPOSE="$PWD/$compose_venv/bin/podman-compose" \
    timeout --signal=INT --kill-after=120 900 .venv/bin/python -m pytest -p no:cacheprovider docker/test_stack.py -v &
tests=$!
wait "$tests"
