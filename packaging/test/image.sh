#!/usr/bin/env bash
# Socket activation through the OCI image: systemd-socket-activate owns
# 127.0.0.1:PORT and passes it as the fd "http" to `podman run`, which
# hands LISTEN_FDS/LISTEN_FDNAMES into the container; a request through
# that port must reach a backend on the host.
#
# usage: image.sh IMAGE   (PODMAN: the podman command line with the
# private store, as packaging.mk sets it)
set -euo pipefail
image=$1
repo=$(cd "$(dirname "$0")/../.." && pwd)
read -r -a podman <<< "${PODMAN:?PODMAN must name the podman command}"
work=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	env "${podman[@]}" rm -f -i handoff-image-test >/dev/null 2>&1 || true
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
backend_port=$(free_port); port=$(free_port)
CGO_ENABLED=0 go build -C "$repo" -o "$work/demo-backend" ./cmd/demo-backend
"$work/demo-backend" -listen "127.0.0.1:$backend_port" -name image-backend & pids+=($!)

cat > "$work/handoff.yaml" <<YAML
listeners: [{name: http}]       # no address: it must come from the socket
upstreams: {app: {targets: [{address: "127.0.0.1:$backend_port"}]}}
routes: [{match: {}, upstream: app}]
admin: {listen: "off"}
YAML
chmod 644 "$work/handoff.yaml"; chmod 755 "$work"

systemd-socket-activate -l "127.0.0.1:$port" --fdname=http \
	env "${podman[@]}" run --rm --name handoff-image-test --network host \
	-v "$work/handoff.yaml:/etc/handoff/handoff.yaml:ro" "$image" > "$work/run.log" 2>&1 & pids+=($!)
for _ in $(seq 50); do ss -ltn "sport = :$port" | grep -q LISTEN && break; sleep 0.1; done

start=$(date +%s.%N)
if ! body=$(curl -sS --max-time 60 "http://127.0.0.1:$port/"); then
	cat "$work/run.log"; echo "image: FAIL: no response through the socket-activated container"; exit 1
fi
took=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN{printf "%.2f", b-a}')
case $body in
*image-backend*) ;;
*) cat "$work/run.log"; echo "image: FAIL: unexpected response: $body"; exit 1 ;;
esac
echo "image: ok: socket-activated $image answered through 127.0.0.1:$port (first request ${took}s incl. container start)"
