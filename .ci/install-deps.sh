#!/usr/bin/env bash
# Installs the system packages the tests use: etcd (a real server process for
# the cluster end-to-end tests), nginx (the load balancer in front of them)
# chromium (the browser tests) and Node.js with npm (the gows.js tests, which
# install the ws package). Idempotent; needs root and apt-get.
set -euo pipefail
need=()
command -v etcd >/dev/null 2>&1 || need+=(etcd-server etcd-client)
command -v nginx >/dev/null 2>&1 || need+=(nginx)
command -v chromium >/dev/null 2>&1 || need+=(chromium fonts-liberation)
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
if [ ${#need[@]} -eq 0 ]; then
  echo "deps: etcd, nginx, chromium, node and npm already installed"
  exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "deps: missing ${need[*]}; install them (Debian: apt-get install ${need[*]})" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# The packaged services are not used (the tests start their own processes):
# keep the package scripts from starting them.
made_policy=0
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
  chmod +x /usr/sbin/policy-rc.d
  made_policy=1
fi
trap 'if [ "$made_policy" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi' EXIT
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
echo "deps: installed ${need[*]}"
