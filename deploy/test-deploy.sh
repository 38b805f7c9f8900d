#!/usr/bin/env bash
# `make test-deploy`: the deploy files really built and run on this machine (podman).
#  1. tools from Debian when missing (as root), containers.conf drop-in (runc, ulimits)
#  2. a Debian-built base image (cached) and the service image (layer-cached)
#  3. the image alone: healthy, classifies, non-root, `podman stop` graceful within 2 s
#  4. docker-compose config -q; kustomize base and overlay against the Kubernetes schemas
#  5. `podman kube play` of the api + worker Deployments against this machine's MariaDB
#     and Redis (after `xintu migrate` from the image): a classification and an edit
# Environment: XINTU_TEST_MYSQL_URL (mysql+asyncmy://root@127.0.0.1:3306/test),
# XINTU_TEST_REDIS_URL (redis://127.0.0.1:6379/0); PYTHON (the project's venv python).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
BIN=$(dirname "$PYTHON")
IMAGE=localhost/xintu:latest
started=$(date +%s)
step() { echo "== [$(( $(date +%s) - started ))s] $*"; }

step "tools"
missing=()
# catatonit: the pause binary `podman kube play` needs (only a Recommends of podman).
for tool in podman buildah mmdebstrap runc docker-compose catatonit; do
    command -v "$tool" >/dev/null || missing+=("$tool")
done
if ! command -v kubectl >/dev/null; then
    # Debian's own kubectl (kubernetes-client) is 1.20: its kustomize cannot read these
    # files. A kubectl package from another configured repository is used when there is one.
    if apt-cache policy kubectl 2>/dev/null | grep -q 'Candidate: [0-9]'; then missing+=(kubectl); fi
fi
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then echo "missing ${missing[*]} (run as root to install)" >&2; exit 1; fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" uidmap >/dev/null
fi
# Kubernetes schemas offline (PyPI), into the project's venv: only this target needs it.
[ -x "$BIN/kubernetes-validate" ] || "$BIN/pip" install --quiet "kubernetes-validate>=1.30"
if [ ! -f /etc/containers/containers.conf.d/50-local.conf ] && [ "$(id -u)" = 0 ]; then
    # crun cannot set RLIMIT_NOFILE without CAP_SYS_RESOURCE nor run on hybrid cgroups.
    mkdir -p /etc/containers/containers.conf.d
    printf '[containers]\ndefault_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]\n\n[engine]\nruntime = "runc"\n' \
        > /etc/containers/containers.conf.d/50-local.conf
fi

step "base image"
BASE_IMAGE=$(deploy/base-image.sh)
echo "$BASE_IMAGE"

step "service image"
build_started=$(date +%s)
podman build --quiet --format docker -f deploy/Dockerfile --build-arg BASE="$BASE_IMAGE" \
    -v /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro \
    -t "$IMAGE" . >/dev/null
size=$(podman image inspect --format '{{.Size}}' "$IMAGE")
echo "image $IMAGE: $((size / 1000000)) MB, built in $(( $(date +%s) - build_started )) s"

step "the image alone"
podman rm -f xintu-ci >/dev/null 2>&1 || true
port=$("$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
podman run -d --name xintu-ci -p "127.0.0.1:$port:8000" -e XINTU_INFERENCE_MODE=local_only \
    "$IMAGE" >/dev/null
trap 'podman rm -f xintu-ci >/dev/null 2>&1 || true' EXIT
"$PYTHON" deploy/smoke.py "http://127.0.0.1:$port" --timeout 120
uid=$(podman exec xintu-ci id -u)
pid1=$(podman exec xintu-ci cat /proc/1/cmdline | tr '\0' ' ')
[ "$uid" = 10001 ] || { echo "runs as uid $uid, not 10001" >&2; exit 1; }
case "$pid1" in *gunicorn*) ;; *) echo "PID 1 is '$pid1', not gunicorn" >&2; exit 1 ;; esac
stop_started=$(date +%s%N)
podman stop -t 10 xintu-ci >/dev/null
stop_s=$(echo "($(date +%s%N) - $stop_started) / 10^9" | bc -l)
# The bound is on the server: SIGTERM to the container's exit. podman's own teardown after
# that (conmon, cleanup) is printed but not judged; it took up to 2 s on a busy machine.
read -r finished code < <(podman inspect --format '{{.State.FinishedAt.UnixNano}} {{.State.ExitCode}}' xintu-ci)
exit_s=$(echo "($finished - $stop_started) / 10^9" | bc -l)
printf 'podman stop: %.2f s in all, server exited after %.2f s, exit code %s\n' "$stop_s" "$exit_s" "$code"
if [ "$code" != 0 ] || [ "$(echo "$exit_s > 2" | bc -l)" = 1 ]; then
    podman logs --tail 30 xintu-ci >&2
    echo "not a graceful stop within 2 s" >&2
    exit 1
fi
podman rm -f xintu-ci >/dev/null

step "compose and Kubernetes files"
XINTU_ENV_FILE=xintu.env.example docker-compose -f deploy/docker-compose.yml config -q
for dir in deploy/k8s/base deploy/k8s/overlays/example; do
    kubectl kustomize "$dir" > "/tmp/xintu-k8s-$$.yaml"
    "$BIN/kubernetes-validate" -k 1.32.0 --strict --quiet "/tmp/xintu-k8s-$$.yaml"
    echo "$dir: valid"
done
rm -f "/tmp/xintu-k8s-$$.yaml"

step "podman kube play: api + worker on MariaDB and Redis"
"$PYTHON" deploy/kube_play.py
echo "== test-deploy passed in $(( $(date +%s) - started )) s"
