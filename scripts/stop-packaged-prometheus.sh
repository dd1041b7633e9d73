#!/usr/bin/env bash
# Keep Debian's packaged Prometheus service off: servecmp starts its own Prometheus (local runs,
# loopback and a free port) and the kind cluster maps 127.0.0.1:9090 to the in-cluster one
# (deploy/kind/kind-config.yaml). Debian 12's prometheus 2.42.0+ds-5+deb12u1 postinst (dh_installsystemd /
# dh_installinit sections) enables prometheus.service and starts it where systemd runs
# (/run/systemd/system exists), and on a sysvinit host registers /etc/init.d/prometheus and
# starts it; either way it listens on :9090 (/etc/default/prometheus passes no
# --web.listen-address). Safe to re-run: does nothing when the service is off or absent.
set -euo pipefail
SYSTEMD_RUN=${SYSTEMD_RUN:-/run/systemd/system}  # sd_booted(3): this directory exists iff systemd is PID 1
INITD=${INITD:-/etc/init.d}
if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi

if [ -d "$SYSTEMD_RUN" ] && command -v systemctl >/dev/null 2>&1; then
  if systemctl is-enabled --quiet prometheus.service 2>/dev/null \
     || systemctl is-active --quiet prometheus.service 2>/dev/null; then
    echo "==> disabling the packaged prometheus.service (it would hold :9090)"
    $SUDO systemctl disable --now prometheus.service
  fi
elif [ -x "$INITD/prometheus" ]; then
  if "$INITD/prometheus" status >/dev/null 2>&1; then
    echo "==> stopping the packaged prometheus init script (it would hold :9090)"
    $SUDO "$INITD/prometheus" stop
  fi
  if command -v update-rc.d >/dev/null 2>&1; then
    $SUDO update-rc.d prometheus disable >/dev/null 2>&1 || true
  fi
fi
