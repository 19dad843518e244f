#!/usr/bin/env bash
# Renders deploy/k8s (the base and every overlay) offline with `kubectl kustomize` and validates
# every object against the Kubernetes schemas and the suite's rules (tests/deploy/k8s/
# validate.js, with kubernetes-models from npm, installed by scripts/test under the build tree);
# its self-test proves the rules catch known breaks. Usage: check_k8s.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
src=$1 build=$2
modules="$build/node/k8s-validate/node_modules"
[ -d "$modules" ] || { echo "check_k8s: $modules is missing (scripts/test runs npm ci)"; exit 1; }
command -v kubectl >/dev/null || { echo "check_k8s: kubectl (with kustomize >= 4) not found"; exit 1; }
out="$build/deploy-k8s"
mkdir -p "$out"
renders=()
for dir in "$src/deploy/k8s/base" "$src"/deploy/k8s/overlays/*; do
  name=$(basename "$dir")
  kubectl kustomize "$dir" >"$out/$name.yaml"
  renders+=("$out/$name.yaml")
done
NODE_PATH="$modules" node "$src/tests/deploy/k8s/validate.js" --self-test "${renders[@]}"
