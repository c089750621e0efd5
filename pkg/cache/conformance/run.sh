#!/usr/bin/env bash
# make conformance: runs the public HTTP caching suite (npm http-cache-tests)
# against handoff's cache and against nginx, Varnish and HAProxy, prints the
# table, and fails if handoff regressed against baseline.json.
# Env: CONFORMANCE_PROXY_CMD (default: the handoff binary with a config caching
# every route, listening on $PORT); CONFORMANCE_STANDIN=1 adds the
# cmd/cacheproxy stand-in (pkg/cache over a bare httputil.ReverseProxy).
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
SUITE_VERSION=0.4.5
WORK=${CONFORMANCE_DIR:-/var/tmp/handoff-conformance}
T=$(mktemp -d); PIDS=()
cleanup(){ for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT
mkdir -p "$WORK"
SUITE="$WORK/node_modules/http-cache-tests"
if [ "$(node -p "require('$SUITE/package.json').version" 2>/dev/null)" != "$SUITE_VERSION" ]; then
  (cd "$WORK" && npm install --no-save --no-audit --no-fund "http-cache-tests@$SUITE_VERSION" >/dev/null) || { echo "npm install http-cache-tests failed"; exit 1; }
fi
free_port(){ python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
wait_port(){ for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$1/" && return 0; sleep 0.1; done; return 1; }

(cd "$SUITE" && npm_config_protocol=http npm_config_port=8000 npm_config_pidfile="$T/origin.pid" exec node server/server.mjs >"$T/origin.log" 2>&1) & PIDS+=($!)
wait_port 8000 || { echo "suite origin did not start on :8000: $(cat "$T/origin.log")"; exit 1; }

score(){ # name port
  (cd "$SUITE" && npm_config_base="http://127.0.0.1:$2" npm_package_config_id= node --no-warnings cli.mjs >"$T/$1.json" 2>"$T/$1.err")
  node "$HERE/score.mjs" "$SUITE" "$T/$1.json" >"$T/$1.score" 2>>"$T/$1.err" || echo '{"pass":0,"required":-1,"optional":0,"failedRequired":[]}' >"$T/$1.score"
}
field(){ node -p "JSON.parse(require('fs').readFileSync('$T/$1.score')).$2"; }

# handoff: the real binary with a config that caches every route
# (CONFORMANCE_PROXY_CMD overrides; $PORT is the port to listen on).
P=$(free_port)
(cd "$ROOT" && CGO_ENABLED=0 go build -o "$T/handoff" ./cmd/handoff) || exit 1
cat >"$T/handoff.yaml" <<'CFG'
listeners: [{name: http, address: "127.0.0.1:${PORT}", protocol: http}]
admin: {listen: "off"}
log: {access: false, level: warn}
cache: {max_memory: 64MiB}
upstreams: {origin: {targets: [{address: "127.0.0.1:8000"}]}}
routes: [{match: {}, upstream: origin, cache: {enabled: true}}]
CFG
sed -i "s|\${PORT}|$P|" "$T/handoff.yaml"
# Not HANDOFF_*: handoff reads those as config keys and refuses unknown ones.
CMD=${CONFORMANCE_PROXY_CMD:-"$T/handoff -c $T/handoff.yaml"}
# exec: the recorded pid is handoff itself, so cleanup stops it (a
# subshell's pid would leave handoff running after the script).
(export PORT=$P; eval "exec $CMD") >"$T/handoff.log" 2>&1 & PIDS+=($!)
wait_port "$P" && score handoff "$P"
NAMES=(handoff)

# CONFORMANCE_STANDIN=1 adds pkg/cache over a bare httputil.ReverseProxy
# (cmd/cacheproxy), to tell the cache's score from the proxy's.
if [ -n "${CONFORMANCE_STANDIN:-}" ]; then
  P=$(free_port)
  go build -o "$T/cacheproxy" "$ROOT/pkg/cache/conformance/cmd/cacheproxy" || exit 1
  "$T/cacheproxy" -listen "127.0.0.1:$P" -origin http://127.0.0.1:8000 >"$T/standin.log" 2>&1 & PIDS+=($!)
  wait_port "$P" && score standin "$P" && NAMES+=(standin)
fi

if command -v nginx >/dev/null; then
  P=$(free_port); sed "s|PORT|$P|; s|DIR|$T|g" "$HERE/peers/nginx.conf" >"$T/nginx.conf"
  nginx -c "$T/nginx.conf" -e "$T/nginx-error.log" & PIDS+=($!)
  wait_port "$P" && score nginx "$P" && NAMES+=(nginx)
fi
if command -v varnishd >/dev/null; then
  P=$(free_port)
  varnishd -F -a "127.0.0.1:$P" -f "$HERE/peers/varnish.vcl" -n "$T/varnish" -s malloc,64m >"$T/varnish.log" 2>&1 & PIDS+=($!)
  wait_port "$P" && score varnish "$P" && NAMES+=(varnish)
fi
if command -v haproxy >/dev/null; then
  P=$(free_port); sed "s|PORT|$P|" "$HERE/peers/haproxy.cfg" >"$T/haproxy.cfg"
  haproxy -db -f "$T/haproxy.cfg" >"$T/haproxy.log" 2>&1 & PIDS+=($!)
  wait_port "$P" && score haproxy "$P" && NAMES+=(haproxy)
fi

printf '\nhttp-cache-tests %s (%s tests)\n%-10s %6s %10s %10s\n' "$SUITE_VERSION" "$(field handoff total)" proxy pass required optional
for n in "${NAMES[@]}"; do
  printf '%-10s %6s %10s %10s\n' "$n" "$(field "$n" pass)" "$(field "$n" required)" "$(field "$n" optional)"
done
echo; echo "handoff required failures: $(node -p "JSON.parse(require('fs').readFileSync('$T/handoff.score')).failedRequired.join(' ')")"
node "$HERE/compare.mjs" "$HERE/baseline.json" "$T/handoff.score"
