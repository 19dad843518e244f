#!/usr/bin/env bash
# Lints every YAML file of the repository (compose, Kubernetes, CI) with yamllint in strict mode
# (warnings fail too), with the repository's .yamllint. Usage: check_yaml.sh SOURCE_DIR
set -euo pipefail
cd "$1"
files=$(git ls-files -co --exclude-standard '*.yml' '*.yaml' '.yamllint' 2>/dev/null || find . -name '*.y*ml')
[ -n "$files" ] || { echo "check_yaml: no YAML files found"; exit 1; }
# shellcheck disable=SC2086
yamllint -s -c .yamllint $files
echo "yamllint: $(echo "$files" | wc -l) files clean"
