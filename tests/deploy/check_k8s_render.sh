#!/usr/bin/env bash
# Proves the offline fallback renderer (tests/deploy/k8s/render.js) that check_k8s.sh uses when
# kubectl is missing. Always: its self-test (kustomize's hash suffixes pinned on a fixture, and
# every kustomize feature it does not implement refused). With kubectl (kustomize >= 4): renders
# deploy/k8s/base, every overlay, tests/deploy/k8s/variants and the fixture with both and requires
# the same objects (names may differ only in the hash suffix; compare.js). Without kubectl:
# validates the fallback's renders with validate.js, as check_k8s.sh then does.
# Usage: check_k8s_render.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
src=$1 build=$2
modules="$build/node/k8s-validate/node_modules"
[ -d "$modules" ] || { echo "check_k8s_render: $modules is missing (scripts/test runs npm ci)"; exit 1; }
export NODE_PATH="$modules"
. "$src/tests/deploy/k8s/renderer.sh"
k8s="$src/tests/deploy/k8s"
node "$k8s/render.js" --self-test

out="$build/deploy-k8s-render"
rm -rf "$out"
mkdir -p "$out"
node "$k8s/render.js" --write-fixture "$out/fixture"
dirs=("$src/deploy/k8s/base" "$src"/deploy/k8s/overlays/* "$src"/tests/deploy/k8s/variants/*
      "$out/fixture/base" "$out/fixture/overlay" "$out/fixture/variant")

k8s_pick_renderer
if [ "$k8s_renderer" = kubectl ]; then
  echo "check_k8s_render: comparing the fallback with kubectl kustomize ($k8s_renderer_why)"
  pairs=()
  for dir in "${dirs[@]}"; do
    file="$out/kubectl-$(basename "$(dirname "$dir")")-$(basename "$dir").yaml"
    kubectl kustomize "$dir" >"$file"
    pairs+=("$dir" "$file")
  done
  node "$k8s/compare.js" "${pairs[@]}"
else
  echo "check_k8s_render: no comparison with kubectl ($k8s_renderer_why); validating the fallback's renders"
  renders=()
  for dir in "$src/deploy/k8s/base" "$src"/deploy/k8s/overlays/* "$src"/tests/deploy/k8s/variants/*
  do
    node "$k8s/render.js" "$dir" >"$out/fallback-$(basename "$dir").yaml"
    renders+=("$out/fallback-$(basename "$dir").yaml")
  done
  node "$k8s/validate.js" --self-test "${renders[@]}"
fi
