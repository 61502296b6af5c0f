#!/usr/bin/env bash
# Make the secrets deploy/compose.yaml reads, in deploy/secrets/ (not committed):
#   api-keys.json            hashed API keys with scopes: OVERDRIVE_API_KEYS_FILE of every replica
#   admin-api-key            a raw key with the `admin` scope, for you
#   prometheus-api-key       a raw key with `metrics:read`, for Prometheus' scrapes
#   grafana-admin-password   Grafana's `admin` password
# Existing files are kept (delete one to make it anew). More keys, rotation, revocation: the
# replicas re-read api-keys.json within a second of a change (docs/security.md), e.g.
#   python -m overdrive.admin keys new --file deploy/secrets/api-keys.json --id feed --scopes rank
# Uses this checkout's Python when it can import overdrive, else the image (IMAGE, ENGINE).
set -euo pipefail
cd "$(dirname "$0")/.."
out=secrets
mkdir -p "$out"
chmod 700 "$out"   # the containers read the files through bind mounts, not through this folder

admin() {  # python -m overdrive.admin ..., with paths relative to deploy/
    if python3 -c "import overdrive.admin" >/dev/null 2>&1; then
        OVERDRIVE_HOST=127.0.0.1 python3 -m overdrive.admin "$@"
    else
        local engine=${ENGINE:-$(command -v docker || command -v podman)}
        "$engine" run --rm --user "$(id -u):$(id -g)" -v "$PWD/$out:/work/$out" -w /work \
            -e OVERDRIVE_HOST=127.0.0.1 "${IMAGE:-overdrive:latest}" python -m overdrive.admin "$@"
    fi
}

new_key() {  # new_key ID SCOPES FILE: store the hash in api-keys.json, the key in FILE
    [ -s "$out/$3" ] && return 0
    admin keys new --file "$out/api-keys.json" --id "$1" --scopes "$2" > "$out/$3.tmp" 2>/dev/null
    head -n 1 "$out/$3.tmp" | tr -d '\n' > "$out/$3" && rm -f "$out/$3.tmp"
    echo "made $out/$3 (key '$1', scopes $2)"
}

new_key admin admin admin-api-key
new_key prometheus metrics:read prometheus-api-key
if [ ! -s "$out/grafana-admin-password" ]; then
    python3 -c "import secrets; print(secrets.token_urlsafe(24), end='')" > "$out/grafana-admin-password"
    echo "made $out/grafana-admin-password"
fi
# Readable by the containers' users (overdrive 10001, nobody, grafana 472).
chmod 644 "$out"/*
