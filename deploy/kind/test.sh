#!/bin/bash
# api_tests/ against the Helm chart on a kind cluster: the same chart, the same
# values file (deploy/k8s/ci/kind-values.yaml, which `make check-deploy`
# validates) and the same api_tests/ as everywhere else. `make kind-test` runs
# it, and so does .github/workflows/kind.yaml.
#
# usage: deploy/kind/test.sh IMAGE_ARCHIVE
#   IMAGE_ARCHIVE  `podman save` (or `docker save`) of localhost/codejail:ci
#
# Needs: kind and a container engine for it (Docker, or Podman with
# KIND_EXPERIMENTAL_PROVIDER=podman), helm and kubectl from build/deploy-tools
# (`make check-deploy` puts them there), python3-pytest and python3-requests.
# Environment: KIND (default kind), KIND_CLUSTER (default codejail-ci),
# KIND_NODE_IMAGE (default kindest/node:v1.33.1), KEEP_CLUSTER=1 keeps it.
#
# What the nodes get, as deploy/k8s/README.md asks of real ones: the seccomp
# profile at /var/lib/kubelet/seccomp/codejail.json, and the feature gates
# for user-namespaced pods with an unmasked /proc (UserNamespacesSupport,
# ProcMountType). All traffic stays on this machine: the cluster is local,
# the service is reached through a port-forward on 127.0.0.1.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
archive=${1:?usage: deploy/kind/test.sh IMAGE_ARCHIVE}
archive=$(cd "$(dirname "$archive")" && pwd)/$(basename "$archive")
kind=${KIND:-kind}
cluster=${KIND_CLUSTER:-codejail-ci}
node_image=${KIND_NODE_IMAGE:-kindest/node:v1.33.1}
helm=$root/build/deploy-tools/bin/helm
kubectl=$root/build/deploy-tools/bin/kubectl
work=$root/build/kind
ns=codejail
python=/usr/bin/python3

for tool in "$helm" "$kubectl"; do
    [ -x "$tool" ] || { echo "kind/test.sh: no $tool (run make check-deploy)" >&2; exit 2; }
done
command -v "$kind" > /dev/null || { echo "kind/test.sh: no kind binary" >&2; exit 2; }
mkdir -p "$work"
export KUBECONFIG="$work/kubeconfig"

pf_pid=""
cleanup() {
    [ -n "$pf_pid" ] && kill "$pf_pid" 2> /dev/null
    if [ "${KEEP_CLUSTER:-0}" != 1 ]; then
        "$kind" delete cluster --name "$cluster" > /dev/null 2>&1 || true
    fi
}
trap cleanup EXIT

diagnose() {
    echo "---- diagnostics ----" >&2
    "$kubectl" -n "$ns" get all -o wide >&2 || true
    "$kubectl" -n "$ns" describe pods >&2 || true
    "$kubectl" -n "$ns" logs -l app.kubernetes.io/name=codejail --tail 50 >&2 || true
}

# ---- the cluster ------------------------------------------------------------
sed "s|@SECCOMP_PROFILE@|$root/deploy/seccomp/codejail.json|" \
    "$root/deploy/kind/cluster.yaml" > "$work/cluster.yaml"
"$kind" delete cluster --name "$cluster" > /dev/null 2>&1 || true
"$kind" create cluster --name "$cluster" --image "$node_image" \
    --config "$work/cluster.yaml" --kubeconfig "$KUBECONFIG" --wait 180s
"$kind" load image-archive "$archive" --name "$cluster"

# ---- the chart --------------------------------------------------------------
canary_name=CJ_API_TESTS_SECRET
canary_value=$($python -c 'import secrets; print(secrets.token_hex(16))')
"$kubectl" create namespace "$ns"
if ! "$helm" install codejail "$root/deploy/k8s" --namespace "$ns" \
        -f "$root/deploy/k8s/ci/kind-values.yaml" \
        --set-json "extraEnv=[{\"name\": \"$canary_name\", \"value\": \"$canary_value\"}]" \
        --wait --timeout 5m; then
    diagnose
    exit 1
fi
"$kubectl" -n "$ns" rollout status deployment/codejail --timeout 120s || { diagnose; exit 1; }
"$kubectl" -n "$ns" get pods -o wide

# ---- api_tests through a port-forward ---------------------------------------
port=$($python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$kubectl" -n "$ns" port-forward --address 127.0.0.1 svc/codejail "$port:8080" > "$work/port-forward.log" 2>&1 &
pf_pid=$!
for _ in $(seq 60); do
    code=$(curl -s -o "$work/health.json" -w '%{http_code}' --max-time 5 "http://127.0.0.1:$port/health/" || true)
    [ "$code" = 200 ] && break
    sleep 1
done
[ "$code" = 200 ] || { cat "$work/port-forward.log" >&2; diagnose; exit 1; }
echo "/health/: $(cat "$work/health.json")"

export CODEJAIL_SERVICE_URL="http://127.0.0.1:$port"
export CODEJAIL_API_TESTS_OVERRIDE_CONTEXT=api-tests-long
export CODEJAIL_API_TESTS_ENV_CANARY="$canary_name=$canary_value"
export PYTHONDONTWRITEBYTECODE=1
if ! $python -m pytest -p no:cacheprovider -q -rfEs "$root/api_tests"; then
    diagnose
    exit 1
fi
echo "kind/test.sh: OK"
