#!/bin/sh
# install.sh installs what `make bench` and `make soak` need on Debian 12:
# the load generators (wrk, h2load), the peers (haproxy, nginx with its
# stream module, caddy, varnish), gnuplot for the charts and benchstat for
# the microbenchmarks. Each step is skipped when the tool is already there,
# so running it again is cheap.
#
# Debian starts nginx, haproxy and varnish on install. The harness never uses
# their default ports (80, 6081, …) and starts its own instances with its own
# configs, so those services are stopped here only to free the CPU; on
# machines where systemd is not PID 1 `service x stop` is the portable way.
set -eu

need=""
have() { command -v "$1" >/dev/null 2>&1; }
have wrk      || need="$need wrk"
have h2load   || need="$need nghttp2-client"
have haproxy  || need="$need haproxy"
have nginx    || need="$need nginx"
have caddy    || need="$need caddy"
have varnishd || need="$need varnish"
have gnuplot  || need="$need gnuplot-nox"
have taskset  || need="$need util-linux"
# nginx's stream module (L4 scenario) is a separate package on Debian.
[ -e /usr/lib/nginx/modules/ngx_stream_module.so ] || need="$need libnginx-mod-stream"

if [ -n "$need" ]; then
	echo "install.sh: installing$need"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	# shellcheck disable=SC2086 # word splitting of the package list is wanted
	apt-get install -y -qq --no-install-recommends $need >/dev/null
fi

for svc in nginx haproxy varnish caddy; do
	if [ -x "/etc/init.d/$svc" ]; then
		service "$svc" stop >/dev/null 2>&1 || true
	fi
done

# benchstat compares `make bench-micro` runs (pinned: the module proxy here
# refuses some @latest look-ups).
GOBIN_DIR="$(go env GOPATH)/bin"
if ! have benchstat && [ ! -x "$GOBIN_DIR/benchstat" ]; then
	echo "install.sh: installing benchstat"
	go install golang.org/x/perf/cmd/benchstat@v0.0.0-20250813145418-2f7363a06fe1 || \
		echo "install.sh: benchstat not installed (optional: only bench-micro comparisons need it)"
fi
echo "install.sh: ok"
