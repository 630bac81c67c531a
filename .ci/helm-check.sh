#!/usr/bin/env bash
# The Helm chart's checks (issue 6): helm lint --strict, helm template for the default values
# and the multi-region example (lab, coordinator cluster, one region's cluster) and a variant
# with the optional branches, kubernetes-validate --strict on every rendered manifest, and
# `mpic config check` / `unbound-checkconf` on every rendered configuration (.ci/helm_check.py).
#
# Helm is not a Debian package: PyPI's helm-python-sdk carries Helm's own Go code. It and
# kubernetes-validate go into a virtualenv in .ci/.venv (ignored by git).
#
#   .ci/helm-check.sh                 MPIC_BIN=path/to/mpic to skip building it
set -euo pipefail
cd "$(dirname "$0")/.."

start=$SECONDS
venv=.ci/.venv
helm_sdk=helm-python-sdk==0.2.2
validator=kubernetes-validate==1.37.0

if ! "$venv/bin/python" -c 'import helm_python, kubernetes_validate' >/dev/null 2>&1 ||
    [ "$(cat "$venv/.requirements" 2>/dev/null)" != "$helm_sdk $validator" ]; then
    echo "helm-check: installing $helm_sdk and $validator into $venv"
    rm -rf "$venv"
    if ! python3 -m venv "$venv" >/dev/null 2>&1; then
        # Debian's python3 keeps venv (and ensurepip) in a separate package.
        rm -rf "$venv"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
        python3 -m venv "$venv"
    fi
    "$venv/bin/pip" install --quiet --disable-pip-version-check "$helm_sdk" "$validator"
    echo "$helm_sdk $validator" >"$venv/.requirements"
fi
echo "helm-check: tools ready ($((SECONDS - start)) s)"

mpic=${MPIC_BIN:-}
if [ -z "$mpic" ]; then
    cargo build --locked --quiet --bin mpic
    mpic=${CARGO_TARGET_DIR:-target}/debug/mpic
fi
echo "helm-check: mpic binary: $mpic ($((SECONDS - start)) s)"

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
"$venv/bin/python" .ci/helm_check.py "$mpic" "$out"
echo "helm-check: total $((SECONDS - start)) s"
