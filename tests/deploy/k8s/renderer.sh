# shellcheck shell=bash disable=SC2034
# renderer.sh -- sourced by tests/deploy/check_k8s*.sh: picks how deploy/k8s is rendered.
# `kubectl kustomize` when kubectl with kustomize >= 4 is on PATH (kubectl is no Debian package,
# so a fresh machine may lack it); otherwise our offline fallback, tests/deploy/k8s/render.js.
# LOYALTY_K8S_RENDERER=kubectl|fallback forces one (auto, the default, picks as above).
# Needs $src (the source tree) and NODE_PATH set to the npm modules of tests/deploy/k8s.

# Sets k8s_renderer (kubectl or fallback) and k8s_renderer_why (for the log).
k8s_pick_renderer() {
  local major=""
  if command -v kubectl >/dev/null; then
    major=$(kubectl version --client 2>/dev/null |
      sed -n 's/^Kustomize Version: v\{0,1\}\([0-9][0-9]*\)\..*/\1/p' | head -n1 || true)
  fi
  case "${LOYALTY_K8S_RENDERER:-auto}" in
    kubectl)
      if [ -z "$major" ] || [ "$major" -lt 4 ]; then
        echo "LOYALTY_K8S_RENDERER=kubectl but no kubectl with kustomize >= 4 found" >&2
        return 1
      fi
      k8s_renderer=kubectl k8s_renderer_why="forced by LOYALTY_K8S_RENDERER" ;;
    fallback)
      k8s_renderer=fallback k8s_renderer_why="forced by LOYALTY_K8S_RENDERER" ;;
    auto)
      if ! command -v kubectl >/dev/null; then
        k8s_renderer=fallback k8s_renderer_why="kubectl not found"
      elif [ -z "$major" ] || [ "$major" -lt 4 ]; then
        k8s_renderer=fallback k8s_renderer_why="kubectl has no kustomize >= 4 (${major:-unknown})"
      else
        k8s_renderer=kubectl k8s_renderer_why="kustomize v$major"
      fi ;;
    *)
      echo "LOYALTY_K8S_RENDERER must be auto, kubectl or fallback" >&2; return 1 ;;
  esac
}

# k8s_render_with RENDERER DIR: the rendered YAML of DIR on stdout.
k8s_render_with() {
  if [ "$1" = kubectl ]; then
    kubectl kustomize "$2"
  else
    node "${src:?}/tests/deploy/k8s/render.js" "$2"
  fi
}

k8s_describe() {
  if [ "$1" = kubectl ]; then
    echo "kubectl kustomize"
  else
    echo "the fallback renderer tests/deploy/k8s/render.js"
  fi
}
