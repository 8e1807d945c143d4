#!/bin/sh
# Install the Debian packages the test suite runs for real (promtool, Prometheus,
# Alertmanager, Chromium), unless they are already on PATH.
set -eu
missing=""
command -v promtool >/dev/null 2>&1 || missing="$missing prometheus"
command -v prometheus >/dev/null 2>&1 || missing="$missing prometheus"
command -v prometheus-alertmanager >/dev/null 2>&1 || missing="$missing prometheus-alertmanager"
command -v amtool >/dev/null 2>&1 || missing="$missing prometheus-alertmanager"
command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
[ -z "$missing" ] && exit 0
packages=$(echo "$missing" | tr ' ' '\n' | sort -u | tr '\n' ' ')
if [ "$(id -u)" -ne 0 ]; then
    echo "The tests need these Debian packages:$packages" >&2
    echo "Install them with: sudo apt-get update && sudo apt-get install -y$packages" >&2
    exit 1
fi
apt-get update
DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $packages
