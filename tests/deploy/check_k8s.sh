#!/usr/bin/env bash
# Renders deploy/k8s (the base and every overlay, and tests/deploy/k8s/variants: overlays/dev with
# the components of deploy/k8s/components, as an operator's overlay includes them) offline and
# validates every object against the Kubernetes schemas (and the prometheus-operator's CRD
# schemas) and the suite's rules (tests/deploy/k8s/validate.js, with kubernetes-models
# from npm, installed by scripts/test under the build tree); its self-test proves the rules catch
# known breaks. Renders with `kubectl kustomize` when kubectl (with kustomize >= 4) is there, else
# with our offline fallback tests/deploy/k8s/render.js (kubectl is no Debian package; see
# tests/deploy/k8s/renderer.sh, and check_k8s_render.sh for the proof that both agree).
# Usage: check_k8s.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
src=$1 build=$2
modules="$build/node/k8s-validate/node_modules"
[ -d "$modules" ] || { echo "check_k8s: $modules is missing (scripts/test runs npm ci)"; exit 1; }
export NODE_PATH="$modules"
. "$src/tests/deploy/k8s/renderer.sh"
k8s_pick_renderer
echo "check_k8s: rendering with $(k8s_describe "$k8s_renderer") ($k8s_renderer_why)"
out="$build/deploy-k8s"
mkdir -p "$out"
renders=()
for dir in "$src/deploy/k8s/base" "$src"/deploy/k8s/overlays/* \
           "$src"/tests/deploy/k8s/variants/*; do
  name=$(basename "$dir")
  k8s_render_with "$k8s_renderer" "$dir" >"$out/$name.yaml"
  renders+=("$out/$name.yaml")
done
node "$src/tests/deploy/k8s/validate.js" --self-test "${renders[@]}"
