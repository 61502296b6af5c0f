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
#   WHEELS     a folder of wheels offered to pip as find-links (default /opt/wheels when it
#              exists: the CPU build of torch lies there), served on 127.0.0.1 for the build and
#              named in the `pip-conf` build secret
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
    # A fixed port when free: the address is a build argument, and a new one would miss the cache.
    wheels_port=$(python3 -c 'import socket
s = socket.socket()
try:
    s.bind(("127.0.0.1", 18099))
except OSError:
    s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])')
    python3 -m http.server --bind 127.0.0.1 --directory "$WHEELS" "$wheels_port" >/dev/null 2>&1 &
    server_pid=$!
    # The wheels here replace PyTorch's CPU index, which cannot be reached from this machine.
    printf '[global]\nfind-links = http://127.0.0.1:%s/\n' "$wheels_port" > "$work/pip.conf"
    build_args+=(--secret "id=pip-conf,src=$work/pip.conf")
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

# ---- smoke ----------------------------------------------------------------------------------------
# The default image: no torch; the worker, trainer and admin modules there; every shared library's
# dependencies present; runs as `overdrive`; starts on a
# read-only root (as deploy/k8s runs it) and answers /health/ready; the text model runs on ONNX
# Runtime from the build's compilation; a retrain asked with POST /models/train (embedded mode,
# OVERDRIVE_TRAINER=here: the smoke run has no Kafka or Redis, which `python -m overdrive.trainer`
# needs, so it only checks that the trainer refuses to start without them) publishes into the
# model volume, and a new container on that volume serves that version.
tag=$IMAGE:latest
say "smoke run of $tag"
pod run --rm "${limits[@]}" "$tag" python -c "
import importlib.util
heavy = [m for m in ('torch', 'transformers', 'sentence_transformers') if importlib.util.find_spec(m)]
assert not heavy, heavy
import overdrive.worker, overdrive.trainer, overdrive.admin  # the worker, trainer and admin CLI ship in the same image
print('no torch, transformers or sentence-transformers; overdrive.worker, overdrive.trainer and overdrive.admin import')"
# Not the CUDA extensions (implicit/gpu: loaded only for a GPU) nor auditwheel's vendored *.libs
# (found through the RPATH of the module that loads them, which ldd on the library itself lacks).
missing=$(pod run --rm "${limits[@]}" "$tag" sh -c \
    'find /opt/venv -name "*.so*" -type f ! -path "*/gpu/*" ! -path "*.libs/*" -exec ldd {} + 2>/dev/null \
     | grep "not found" | sort -u')
[ -z "$missing" ] || { echo "shared libraries missing in the image: $missing" >&2; exit 1; }
user=$(pod run --rm "${limits[@]}" "$tag" id -un)
[ "$user" = overdrive ] || { echo "runs as $user, not overdrive" >&2; exit 1; }

secret=$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')
token=$(pod run --rm "${limits[@]}" "$tag" python -c "
import sys, time, jwt
print(jwt.encode({'sub': 'smoke', 'scope': 'admin', 'exp': int(time.time()) + 3600}, sys.argv[1], 'HS256'))" "$secret")
auth=(-H "Authorization: Bearer $token" -H 'Content-Type: application/json')
# The trainer (deploy/k8s' Deployment and CronJob): without Kafka and Redis it refuses, exit 1.
refusal=$(pod run --rm "${limits[@]}" --read-only --tmpfs /tmp -e "OVERDRIVE_JWT_SECRET=$secret" "$tag" \
    python -m overdrive.trainer --once 2>&1) && { echo "the trainer ran without Kafka: $refusal" >&2; exit 1; }
case $refusal in
    *KAFKA_BOOTSTRAP_SERVERS*) ;;
    *) echo "the trainer failed otherwise than by refusing to run without Kafka: $refusal" >&2; exit 1 ;;
esac
models_volume=overdrive-smoke-models-$$
start() {  # start a container on the model volume; sets container and ready (seconds to ready)
    local t0 code
    t0=$(now)
    container=$(pod run -d "${limits[@]}" --read-only --tmpfs /tmp -v "$models_volume-data:/var/lib/overdrive/data" \
        -v "$models_volume:/var/lib/overdrive/models" -p "127.0.0.1:$PORT:8000" \
        -e "OVERDRIVE_JWT_SECRET=$secret" -e OVERDRIVE_TRAINER=here -e OVERDRIVE_RETRAIN_INTERVAL_MINUTES=0 "$tag")
    ready=""
    for _ in $(seq 1 1200); do
        if code=$(curl -s -o "$work/ready.json" -w '%{http_code}' "http://127.0.0.1:$PORT/health/ready" 2>/dev/null) \
            && [ "$code" = 200 ]; then
            ready=$(elapsed "$t0")
            return 0
        fi
        if [ "$(pod inspect --format '{{.State.Running}}' "$container")" != true ]; then
            pod logs "$container" >&2
            echo "the container stopped before it was ready" >&2
            exit 1
        fi
        sleep 0.1
    done
    pod logs "$container" | tail -40 >&2
    echo "not ready after 120 s" >&2
    exit 1
}
stop() { pod rm -f "$container" >/dev/null; container=""; }
trap 'cleanup; pod volume rm -f "$models_volume" "$models_volume-data" >/dev/null 2>&1 || true' EXIT

start
first_ready=$ready
live=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/health/live")
unauth=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/rank/strategies")
[ "$live" = 200 ] && [ "$unauth" = 401 ] || { echo "live $live, unauthenticated $unauth (want 200, 401)" >&2; exit 1; }
# The image's HEALTHCHECK, run once by hand (podman schedules it with systemd timers, absent here).
health=unhealthy
pod healthcheck run "$container" >/dev/null 2>&1 && health=healthy

# Items and signals, then the text model and a retrain.
for i in $(seq 0 29); do
    curl -sf "${auth[@]}" -o /dev/null "http://127.0.0.1:$PORT/items" \
        -d "{\"id\": \"i$i\", \"text\": \"item $i about topic $((i % 5)): cooking, travel, music, sport or film\"}"
done
python3 - "$PORT" "$token" <<'PY'
import json, random, sys, urllib.request
port, token = sys.argv[1:]
rng = random.Random(0)
signals = [{"user_id": f"u{u}", "content_id": f"i{rng.randrange(30)}", "signal_type": rng.choice(["view", "like", "share"]),
            "signal_id": f"s{u}-{k}"} for u in range(40) for k in range(15)]
request = urllib.request.Request(f"http://127.0.0.1:{port}/signals/batch", data=json.dumps({"signals": signals}).encode(),
                                 headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
print("signals:", urllib.request.urlopen(request, timeout=30).status)
PY
for _ in $(seq 1 100); do
    text=$(curl -s "http://127.0.0.1:$PORT/health/ready" | python3 -c "
import json, sys; t = json.load(sys.stdin)['checks']['models']['content']['encoders']['encoders']['text']
print(t['model'] if t['loaded'] and not t['degraded'] else '')")
    [ -n "$text" ] && break
    sleep 0.2
done
[ -n "$text" ] || { echo "the text encoder did not load" >&2; exit 1; }
pod logs "$container" 2>&1 | grep -q "text encoder ready: .*(onnx-int8" \
    || { echo "the text encoder does not run on ONNX Runtime" >&2; exit 1; }
mem=$(pod stats --no-stream --format '{{.MemUsage}}' "$container" | cut -d/ -f1)
# A retrain in the container (embedded mode trains where it serves), waited for.
version=$(python3 - "$PORT" "$token" <<'PY'
import json, sys, time, urllib.request
port, token = sys.argv[1:]
def call(method, path):
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method, data=b"{}" if method == "POST" else None,
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    return json.loads(urllib.request.urlopen(request, timeout=30).read())
print("retrain asked:", json.dumps(call("POST", "/models/train")), file=sys.stderr)
until = time.monotonic() + 600
while (job := call("GET", "/models/status")["collaborative"]["last_training"]).get("state") == "running":
    assert time.monotonic() < until, "the retrain still runs after 600 s"
    time.sleep(1)
assert job.get("state") == "done", f"the retrain ended {job}"
print(call("GET", "/models/status")["collaborative"]["artifacts"]["current_version"])
PY
)
stop

start   # a second container on the same model volume: loads that version, trains nothing
served=$(curl -s "${auth[@]}" "http://127.0.0.1:$PORT/models/status" | python3 -c "
import json, sys; print(json.load(sys.stdin)['collaborative']['artifacts']['served_version'])")
[ "$served" = "$version" ] || { echo "the new container serves $served, not $version" >&2; exit 1; }

echo "image $tag: $(size_mb "$tag"); start to /health/ready 200: $first_ready s (again, with a model: $ready s);" \
    "healthcheck: $health; memory after the text model loaded: $mem; text model: $text (onnx-int8);" \
    "retrain published $version, served by a new container"
