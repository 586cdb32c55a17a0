#!/usr/bin/env bash
# Installs infra-agent on a droplet as a systemd service.
#
#   install.sh BINARY AGENT_TOML [PKI_DIR]
#
# BINARY is the infra-agent executable, AGENT_TOML its config (see
# README "Running agents by hand"), PKI_DIR holds ca.pem, node.pem, node.key
# and gossip.key. cloud-init user-data written by `infractl orchestrate`
# calls this script; it is idempotent.
set -euo pipefail
bin=${1:?usage: install.sh BINARY AGENT_TOML [PKI_DIR]}
conf=${2:?usage: install.sh BINARY AGENT_TOML [PKI_DIR]}
pki=${3:-}
here=$(cd "$(dirname "$0")" && pwd)

install -m 0755 "$bin" /usr/local/bin/infra-agent
install -d -m 0700 /etc/infra-agent /var/lib/infra-agent
install -m 0600 "$conf" /etc/infra-agent/agent.toml
if [ -n "$pki" ]; then
  install -d -m 0700 /etc/infra-agent/pki
  for f in "$pki"/*; do install -m 0600 "$f" /etc/infra-agent/pki/; done
fi
install -m 0644 "$here/infra-agent.service" /etc/systemd/system/infra-agent.service
systemctl daemon-reload
systemctl enable --now infra-agent.service
systemctl is-active --quiet infra-agent.service
echo "infra-agent installed and running"
