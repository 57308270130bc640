#!/usr/bin/env bash
# make up STACK=...: deploy one stack with `pulumi up` on the current kube context.
# When the Pulumi CLI or a cluster is missing it says so and shows the offline render instead.
set -euo pipefail
stack="${1:?usage: scripts/up.sh STACK}"
cd "$(dirname "$0")/.."

# Without the Pulumi CLI or a cluster, show what would be deployed instead: the offline render.
missing=""
if ! command -v pulumi >/dev/null 2>&1; then
  missing="the Pulumi CLI is not installed (https://www.pulumi.com/docs/install/)"
elif ! command -v kubectl >/dev/null 2>&1 || ! kubectl version --request-timeout=5s >/dev/null 2>&1; then
  missing="no cluster is reachable in the current kube context ($(kubectl config current-context 2>/dev/null || echo none)); create one (kind create cluster) or switch context"
fi
if [ -n "$missing" ]; then
  venv/bin/python -m stack.render "$stack"
  echo
  echo "NOT DEPLOYED: $missing."
  echo "Above is the offline render of what 'pulumi up' would create ('make plan STACK=$stack' runs it alone)."
  exit 0
fi

venv/bin/python -m stack.render "$stack" >/dev/null  # the config is valid and the manifests validate before anything is applied

if ! pulumi whoami >/dev/null 2>&1; then
  mkdir -p .pulumi-state
  export PULUMI_BACKEND_URL="file://$PWD/.pulumi-state"
  export PULUMI_CONFIG_PASSPHRASE="${PULUMI_CONFIG_PASSPHRASE-}"
  echo "Using the local Pulumi backend in .pulumi-state (set PULUMI_CONFIG_PASSPHRASE to protect its secrets)."
fi
pulumi stack select --create "$stack"
pulumi up --stack "$stack"  # shows the preview and asks before changing anything
