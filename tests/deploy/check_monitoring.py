#!/usr/bin/python3
"""Static checks of the monitoring component (deploy/k8s/components/monitoring); check_k8s.sh
validates its objects against the CRD schemas, this file checks what is inside them:

- the PrometheusRule's rule groups pass `promtool check rules` (Debian's `prometheus` package),
  and the unit tests of tests/deploy/monitoring/rules_test.yaml pass `promtool test rules`;
- the Grafana dashboard is JSON with a uid, and every panel's expression parses (promtool, with
  the dashboard's variables replaced by values) and uses only the metrics the services export
  (METRICS below: the names agreed for the services, `up` from Prometheus), each with labels it
  has (or that Prometheus adds to every target);
- the alert expressions pass the same metric and label check.

A self-test first proves that the metric and label check rejects known mistakes.

Usage: check_monitoring.py SOURCE_DIR BUILD_DIR"""
import json
import os
import re
import shutil
import subprocess
import sys

import yaml

# The metrics the services export and their labels (histograms also have _bucket with `le`,
# _sum and _count).
COUNTERS_AND_GAUGES = {
    "grpc_server_handled_total": {"grpc_type", "grpc_service", "grpc_method", "grpc_code"},
    "grpc_client_handled_total": {"grpc_type", "grpc_service", "grpc_method", "grpc_code"},
    "loyalty_error_reason_total": {"grpc_service", "grpc_method", "reason"},
    "loyalty_db_round_trips_total": {"grpc_method"},
    "loyalty_db_transactions_total": {"grpc_method"},
    "loyalty_db_connections_open": set(),
    "loyalty_db_connections_in_use": set(),
    "loyalty_db_serialization_retries_total": set(),
    "loyalty_db_up": set(),
    "loyalty_redis_calls_total": set(),
    "loyalty_redis_errors_total": set(),
    "loyalty_cache_requests_total": {"cache", "result"},
    "loyalty_outbox_pending_rows": set(),
    "loyalty_outbox_oldest_pending_age_seconds": set(),
    "loyalty_ready": set(),
    "loyalty_sagas_in_progress": {"saga_type", "state"},
    "loyalty_sagas_finished_total": {"saga_type", "state"},
    "loyalty_sagas_needs_attention": set(),
    "loyalty_sagas_oldest_in_progress_age_seconds": {"saga_type"},
    "loyalty_saga_recovery_runs_total": set(),
    "loyalty_saga_recovery_resumed_total": set(),
    "loyalty_campaign_runs_total": set(),
    "loyalty_campaign_deliveries_total": set(),
    "loyalty_campaign_skips_total": {"reason"},
    "process_resident_memory_bytes": set(),
    "process_cpu_seconds_total": set(),
    "process_open_fds": set(),
    "process_start_time_seconds": set(),
    "up": set(),
}
HISTOGRAMS = {
    "grpc_server_handling_seconds": {"grpc_type", "grpc_service", "grpc_method"},
    "grpc_client_handling_seconds": {"grpc_type", "grpc_service", "grpc_method"},
    "loyalty_db_statement_seconds": set(),
    "loyalty_saga_step_seconds": {"step"},
}
# Added by Prometheus (job, instance) and the prometheus-operator's service discovery.
TARGET_LABELS = {"job", "instance", "namespace", "pod", "service", "container", "endpoint"}

METRICS = dict(COUNTERS_AND_GAUGES)
for _name, _labels in HISTOGRAMS.items():
    METRICS[_name + "_bucket"] = _labels | {"le"}
    METRICS[_name + "_sum"] = _labels
    METRICS[_name + "_count"] = _labels

KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
            "unless", "offset", "inf", "nan"}
# Grafana's variables, replaced before promtool parses a panel's expression.
GRAFANA_VARS = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}


def metric_errors(expr):
    """What is wrong with the metric names and labels of one PromQL expression (a list)."""
    errors = []
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)
    text = re.sub(r"\$\w+", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    text = re.sub(r"\boffset\s+\w+", "", text)
    used = []
    # Selectors: a name with matchers; the matchers' labels must be the metric's.
    for m in re.finditer(r"([A-Za-z_:][\w:]*)?\s*\{([^}]*)\}", text):
        name, matchers = m.group(1), m.group(2)
        if not name or name in KEYWORDS:
            errors.append(f"a selector without a metric name: {{{matchers}}}")
            continue
        labels = set(re.findall(r"([A-Za-z_]\w*)\s*(?:=~|!~|!=|=)", matchers))
        if name in METRICS:
            for label in sorted(labels - METRICS[name] - TARGET_LABELS - {"__name__"}):
                errors.append(f"{name} has no label {label}")
    text = re.sub(r"\{[^}]*\}", " ", text)
    # Grouping labels must be labels of some metric of the expression.
    grouping = []
    for m in re.finditer(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)", text):
        grouping += [g.strip() for g in m.group(2).split(",") if g.strip()]
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"(?<![\w.])\d+(?:\.\d+)?(?:[eE][+-]?\d+)?", " ", text)
    for m in re.finditer(r"[A-Za-z_:][\w:]*", text):
        word = m.group(0)
        if word.lower() in KEYWORDS or re.match(r"\s*\(", text[m.end():]):
            continue
        used.append(word)
        if word not in METRICS:
            errors.append(f"unknown metric {word}")
    if not used:
        errors.append("no metric at all")
    known = set().union(TARGET_LABELS, *(METRICS.get(u, set()) for u in used))
    for label in grouping:
        if label not in known:
            errors.append(f"grouping by {label}, which none of {sorted(set(used))} has")
    return errors


def self_test():
    good = ['sum by (job, le) (rate(grpc_server_handling_seconds_bucket{job=~"$job", '
            'grpc_type="unary"}[$__rate_interval]))',
            'max by (namespace) (loyalty_sagas_needs_attention) > 0 offset 5m',
            'up{job="gateway"} == 0 and on (instance) loyalty_ready{job="a{b}=c"} < 1e3']
    bad = {'rate(grpc_server_handled_totals[5m])': "unknown metric",
           'sum by (grpc_status) (rate(grpc_server_handled_total[5m]))': "grouping by grpc_status",
           'loyalty_ready{grpc_code="OK"}': "has no label grpc_code",
           'histogram_quantile(0.99, rate(grpc_server_handling_seconds[5m]))': "unknown metric",
           'sum(rate({job="gateway"}[5m]))': "without a metric name",
           'vector(1)': "no metric"}
    problems = []
    # The last good one is wrong on purpose in one way only: the label inside a string is fine.
    good[2] = good[2].replace('a_label_in_a_string="x"', 'job="a_label_in_a_string=x"')
    for expr in good:
        if metric_errors(expr):
            problems.append(f"self-test: rejected {expr}: {metric_errors(expr)}")
    for expr, want in bad.items():
        errors = metric_errors(expr)
        if not any(want in e for e in errors):
            problems.append(f"self-test: {expr}: want an error '{want}', got {errors}")
    return problems


def promtool(*args):
    res = subprocess.run(["promtool", *args], capture_output=True, text=True)
    return res.returncode, (res.stdout + res.stderr).strip()


def main():
    source_dir, build_dir = sys.argv[1], sys.argv[2]
    problems = self_test()
    if problems:
        print("\n".join(problems))
        sys.exit(1)
    print("check_monitoring: self-test: every known mistake in an expression is caught")
    if shutil.which("promtool") is None:
        print("check_monitoring: promtool is missing (Debian package prometheus; scripts/test "
              "installs it)")
        sys.exit(1)
    component = os.path.join(source_dir, "deploy/k8s/components/monitoring")
    out = os.path.join(build_dir, "deploy-monitoring")
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    failed = []

    # The rules: the PrometheusRule's spec is a Prometheus rule file.
    with open(os.path.join(component, "prometheusrule.yaml"), encoding="utf-8") as f:
        rule_obj = yaml.safe_load(f)
    rules_file = os.path.join(out, "loyalty.rules.yaml")
    with open(rules_file, "w", encoding="utf-8") as f:
        yaml.safe_dump(rule_obj["spec"], f, sort_keys=False)
    rc, text = promtool("check", "rules", rules_file)
    print(text)
    if rc != 0:
        failed.append("promtool check rules")
    test_file = os.path.join(out, "rules_test.yaml")
    shutil.copy(os.path.join(source_dir, "tests/deploy/monitoring/rules_test.yaml"), test_file)
    rc, text = promtool("test", "rules", test_file)
    print(text)
    if rc != 0:
        failed.append("promtool test rules")
    alerts = 0
    for group in rule_obj["spec"]["groups"]:
        for rule in group["rules"]:
            alerts += 1
            for e in metric_errors(rule["expr"]):
                failed.append(f"rule {rule.get('alert') or rule.get('record')}: {e}")

    # The dashboard: JSON, and every expression parses and names exported metrics only.
    with open(os.path.join(component, "loyalty-dashboard.json"), encoding="utf-8") as f:
        try:
            dash = json.load(f)
        except json.JSONDecodeError as e:
            print(f"check_monitoring: loyalty-dashboard.json is not JSON: {e}")
            sys.exit(1)
    if not dash.get("uid") or not isinstance(dash.get("panels"), list):
        failed.append("the dashboard needs a uid and panels")
    variables = dict(GRAFANA_VARS)
    for v in dash.get("templating", {}).get("list", []):
        variables.setdefault("$" + v["name"], "x")
    exprs = []

    def walk(panels):
        for p in panels:
            walk(p.get("panels", []))
            for t in p.get("targets", []):
                exprs.append((p.get("title", "?"), t.get("expr", "")))
    walk(dash.get("panels", []))
    if not exprs:
        failed.append("the dashboard has no expressions")
    as_rules = []
    for i, (title, expr) in enumerate(exprs):
        for e in metric_errors(expr):
            failed.append(f"dashboard panel '{title}': {e}")
        concrete = expr
        for name in sorted(variables, key=len, reverse=True):
            concrete = concrete.replace(name, variables[name])
        as_rules.append({"record": f"dashboard:panel_{i}", "expr": concrete})
    panels_file = os.path.join(out, "dashboard-exprs.rules.yaml")
    with open(panels_file, "w", encoding="utf-8") as f:
        yaml.safe_dump({"groups": [{"name": "dashboard", "rules": as_rules}]}, f)
    rc, text = promtool("check", "rules", panels_file)
    if rc != 0:
        print(text)
        failed.append("a dashboard expression does not parse (promtool check rules)")

    for f in failed:
        print(f"check_monitoring: {f}")
    if failed:
        sys.exit(1)
    print(f"check_monitoring: {alerts} alerts and {len(exprs)} dashboard expressions parse and use "
          "only exported metrics and their labels")


if __name__ == "__main__":
    main()
