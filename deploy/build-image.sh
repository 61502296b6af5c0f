#!/usr/bin/env bash
# Build Overdrive's images with podman where no registry but the package ones can be reached, then
# run the default one and time it to ready. Heavy (minutes, a few GB of disk): not part of
# `make test`; tests/deploy/test_image_build.py runs it when OVERDRIVE_BUILD_IMAGE=1.
#
#   deploy/build-image.sh                 # base (if missing) + runtime image `overdrive:latest`, smoke run
#   deploy/build-image.sh full            # the same, plus `overdrive:full` (torch, transformers)
#   deploy/build-image.sh --no-smoke      # build only
#
# Environment:
#   IMAGE      image name (default overdrive)
#   BASE       base image; default localhost/overdrive-base:bookworm, made here when absent:
#              a Debian bookworm minbase root with python3, python3-venv and ca-certificates made by
#              mmdebstrap from Debian's mirror and `podman import`ed (no base image can be pulled)
#   CA_BUNDLE  CA certificates pip inside the build trusts (default: this machine's bundle, so a
#              TLS-intercepting proxy that this machine trusts is trusted there too); handed over as
#              a build secret, never stored in a layer
#   WHEELS     a folder of wheels offered to pip as --find-links (default /opt/wheels when it
#              exists: the CPU build of torch lies there), served on 127.0.0.1 for the build
#   PORT       host port of the smoke run (default 18000)
#
# With a Docker engine and a registry, none of this is needed:
#   docker build -t overdrive .    docker build --target full -t overdrive:full .
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${IMAGE:-overdrive}
BASE=${BASE:-localhost/overdrive-base:bookworm}
PORT=${PORT:-18000}
targets=(runtime)
smoke=1
for arg in "$@"; do
    case $arg in
        full) targets=(runtime full) ;;
        --no-smoke) smoke=0 ;;
        *) echo "usage: $0 [full] [--no-smoke]" >&2; exit 2 ;;
    esac
done

need() { command -v "$1" >/dev/null 2>&1 || { echo "$0: $1 not found (apt-get install $2)" >&2; exit 1; }; }
need podman podman
say() { printf '== %s\n' "$*" >&2; }
now() { date +%s.%N; }
elapsed() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$1" "$(now)"; }
size_mb() { podman image inspect --format '{{.Size}}' "$1" | python3 -c "import sys; print(f'{int(sys.stdin.read()) / 1e6:.0f} MB')"; }

podman_global=()
limits=()
work=$(mktemp -d)
server_pid=""
container=""
cleanup() {
    [ -n "$container" ] && pod rm -f "$container" >/dev/null 2>&1 || true
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# ---- the base: Debian bookworm + Python 3.11, made locally ---------------------------------------
if ! podman image exists "$BASE"; then
    need mmdebstrap mmdebstrap
    say "making $BASE with mmdebstrap"
    t0=$(now)
    mmdebstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
        --customize-hook='rm -rf "$1"/var/cache/apt/*.bin "$1"/usr/share/doc/* "$1"/usr/share/man/*' \
        bookworm "$work/base.tar"
    podman import --change 'CMD ["python3"]' "$work/base.tar" "$BASE" >/dev/null
    rm -f "$work/base.tar"
    say "base made in $(elapsed "$t0") s, $(size_mb "$BASE")"
fi

# ---- how podman runs containers here ---------------------------------------------------------------
# Podman's defaults (crun, nofile/nproc raised for each container) work on most hosts. Where they
# do not (seen on a VM with hybrid cgroups, whose containers may not raise their limits: "crun:
# cgroups in hybrid mode not supported", "setrlimit RLIMIT_NPROC: Operation not permitted"), runc
# with limits no higher than ours does.
if ! podman run --rm "$BASE" true >/dev/null 2>&1; then
    podman_global=(--runtime runc)
    limits=(--ulimit "nofile=$(ulimit -Hn):$(ulimit -Hn)" --ulimit nproc=8192:8192)
    podman "${podman_global[@]}" run --rm "${limits[@]}" "$BASE" true \
        || { echo "podman cannot run a container here, with crun or runc" >&2; exit 1; }
    say "podman: using ${podman_global[*]} ${limits[*]}"
fi
pod() { podman "${podman_global[@]}" "$@"; }

# ---- what pip in the build needs from this machine -----------------------------------------------
build_args=(--format docker --network host --build-arg "BASE=$BASE" "${limits[@]}")
CA_BUNDLE=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
if [ -f "$CA_BUNDLE" ]; then
    build_args+=(--secret "id=ca-bundle,src=$CA_BUNDLE")
fi
WHEELS=${WHEELS:-/opt/wheels}
if [ -d "$WHEELS" ]; then
    wheels_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    python3 -m http.server --bind 127.0.0.1 --directory "$WHEELS" "$wheels_port" >/dev/null 2>&1 &
    server_pid=$!
    # The wheels here replace PyTorch's CPU index, which cannot be reached from this machine.
    build_args+=(--build-arg "PIP_FIND_LINKS=http://127.0.0.1:$wheels_port/" --build-arg "PIP_EXTRA_INDEX_URL=")
fi

# ---- the images -----------------------------------------------------------------------------------
for target in "${targets[@]}"; do
    tag=$IMAGE:latest
    [ "$target" = full ] && tag=$IMAGE:full
    say "building $tag (target $target)"
    t0=$(now)
    pod build "${build_args[@]}" --target "$target" -t "$tag" .
    say "built $tag in $(elapsed "$t0") s: $(size_mb "$tag")"
done

[ "$smoke" = 1 ] || exit 0

# ---- smoke: the default image starts, answers ready, holds no torch, runs the worker's module -----
tag=$IMAGE:latest
say "smoke run of $tag"
pod run --rm "${limits[@]}" "$tag" python -c "
import importlib.util, sys
heavy = [m for m in ('torch', 'transformers', 'sentence_transformers') if importlib.util.find_spec(m)]
assert not heavy, heavy
import overdrive.worker, overdrive.admin  # the worker and the admin CLI ship in the same image
print('no torch, transformers or sentence-transformers; overdrive.worker and overdrive.admin import')"
user=$(pod run --rm "${limits[@]}" "$tag" id -un)
[ "$user" = overdrive ] || { echo "runs as $user, not overdrive" >&2; exit 1; }

secret=$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')
t0=$(now)
container=$(pod run -d "${limits[@]}" -p "127.0.0.1:$PORT:8000" -e "OVERDRIVE_JWT_SECRET=$secret" "$tag")
ready=""
for _ in $(seq 1 1200); do
    if code=$(curl -s -o "$work/ready.json" -w '%{http_code}' "http://127.0.0.1:$PORT/health/ready" 2>/dev/null) \
        && [ "$code" = 200 ]; then
        ready=$(elapsed "$t0")
        break
    fi
    if [ "$(pod inspect --format '{{.State.Running}}' "$container")" != true ]; then
        pod logs "$container" >&2
        echo "the container stopped before it was ready" >&2
        exit 1
    fi
    sleep 0.1
done
[ -n "$ready" ] || { pod logs "$container" | tail -40 >&2; echo "not ready after 120 s" >&2; exit 1; }
cat "$work/ready.json"; echo
live=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/health/live")
unauth=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/rank/strategies")
[ "$live" = 200 ] && [ "$unauth" = 401 ] || { echo "live $live, unauthenticated $unauth (want 200, 401)" >&2; exit 1; }
# The image's HEALTHCHECK, run once by hand (podman schedules it with systemd timers, absent here).
health=unhealthy
pod healthcheck run "$container" >/dev/null 2>&1 && health=healthy
echo "image $tag: $(size_mb "$tag"); start to /health/ready 200: $ready s; healthcheck: $health"
