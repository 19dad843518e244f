#!/usr/bin/python3
"""The side HTTP port of a real member-svc (METRICS_ADDR) read by real clients: the whole
/metrics exposition parsed by prometheus_client's own parser (the text format 0.0.4 parser of
the Prometheus Python client, Debian python3-prometheus-client), with every family the runtime
agreed to serve present with its type, histograms well formed (cumulative buckets ending in
+Inf equal to _count), counter deltas exact after known calls; /livez and /readyz answer 200,
other paths 404 and other methods 405.

Usage: test_metrics.py BUILD_DIR PROTO_DIR OUT_DIR (needs LOYALTY_PG_DSN and
LOYALTY_REDIS_URL, as scripts/test exports)."""
import sys
import urllib.error
import urllib.request

import grpc
from prometheus_client.parser import text_string_to_metric_families

import svc

FAMILIES = {
    "grpc_server_handled_total": "counter",
    "grpc_server_handling_seconds": "histogram",
    "grpc_client_handled_total": "counter",
    "grpc_client_handling_seconds": "histogram",
    "loyalty_error_reason_total": "counter",
    "loyalty_db_round_trips_total": "counter",
    "loyalty_db_transactions_total": "counter",
    "loyalty_db_statement_seconds": "histogram",
    "loyalty_db_connections_open": "gauge",
    "loyalty_db_connections_in_use": "gauge",
    "loyalty_db_serialization_retries_total": "counter",
    "loyalty_db_up": "gauge",
    "loyalty_redis_calls_total": "counter",
    "loyalty_redis_errors_total": "counter",
    "loyalty_cache_requests_total": "counter",
    "loyalty_outbox_pending_rows": "gauge",
    "loyalty_outbox_oldest_pending_age_seconds": "gauge",
    "loyalty_ready": "gauge",
    "process_resident_memory_bytes": "gauge",
    "process_cpu_seconds_total": "counter",
    "process_open_fds": "gauge",
    "process_start_time_seconds": "gauge",
}


def http(port, path, method="GET"):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.headers.get("Content-Type"), resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), e.read().decode()


def parse(text):
    """{family name as exposed: (type, [samples])}; the parser drops a counter's _total from
    the family name, so the name is taken back from the HELP/TYPE lines' order."""
    out = {}
    for fam in text_string_to_metric_families(text):
        name = fam.name + "_total" if fam.type == "counter" and (fam.name + "_total") in text \
            else fam.name
        out[name] = (fam.type, fam.samples)
    return out


def value(families, family, sample_name, **labels):
    for s in families.get(family, (None, []))[1]:
        if s.name == sample_name and all(s.labels.get(k) == v for k, v in labels.items()):
            return s.value
    return 0.0


def check_histograms(families):
    for name, (kind, samples) in families.items():
        if kind != "histogram":
            continue
        series = {}
        for s in samples:
            key = tuple(sorted((k, v) for k, v in s.labels.items() if k != "le"))
            series.setdefault(key, {"buckets": [], "count": None})
            if s.name == name + "_bucket":
                series[key]["buckets"].append((float(s.labels["le"]), s.value))
            elif s.name == name + "_count":
                series[key]["count"] = s.value
        for key, h in series.items():
            counts = [v for _, v in sorted(h["buckets"])]
            assert counts == sorted(counts), (name, key, "buckets not cumulative")
            assert sorted(h["buckets"])[-1][0] == float("inf"), (name, key, "no +Inf")
            assert counts[-1] == h["count"], (name, key, "+Inf differs from _count")


def main():
    build_dir, proto_dir, out_dir = sys.argv[1:4]
    svc.generate(proto_dir, out_dir, ["grpc/health/v1/health.proto"])
    health_pb2 = svc.load(out_dir, "grpc/health/v1/health_pb2.py", "health_pb2")
    service = svc.Service(build_dir, "member-svc")
    service.start(health_pb2)
    try:
        port = service.metrics_port
        status, ctype, before_text = http(port, "/metrics")
        assert status == 200, status
        assert ctype == "text/plain; version=0.0.4; charset=utf-8", ctype
        before = parse(before_text)
        for name, kind in FAMILIES.items():
            assert name in before, f"{name} missing"
            assert before[name][0] == kind, (name, before[name][0], kind)

        with grpc.insecure_channel(service.addr) as channel:
            get_member = channel.unary_unary("/loyalty.v1.MemberService/GetMember",
                                             request_serializer=lambda b: b,
                                             response_deserializer=lambda b: b)
            for _ in range(3):  # no merchant_id: INVALID_ARGUMENT
                try:
                    get_member(b"", timeout=5)
                    raise AssertionError("GetMember without a merchant answered OK")
                except grpc.RpcError as e:
                    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, e.code()
            for _ in range(2):
                svc.unary(channel, "/grpc.health.v1.Health/Check",
                          health_pb2.HealthCheckRequest(), health_pb2.HealthCheckResponse)

        status, _, after_text = http(port, "/metrics")
        assert status == 200, status
        after = parse(after_text)
        check_histograms(after)
        handled = "grpc_server_handled_total"
        labels = dict(grpc_type="unary", grpc_service="loyalty.v1.MemberService",
                      grpc_method="GetMember")
        delta = value(after, handled, handled, grpc_code="InvalidArgument", **labels) - \
            value(before, handled, handled, grpc_code="InvalidArgument", **labels)
        assert delta == 3, delta
        health = dict(grpc_type="unary", grpc_service="grpc.health.v1.Health",
                      grpc_method="Check", grpc_code="OK")
        delta = value(after, handled, handled, **health) - value(before, handled, handled, **health)
        assert delta == 2, delta
        assert value(after, "loyalty_ready", "loyalty_ready") == 1
        assert value(after, "process_resident_memory_bytes", "process_resident_memory_bytes") > 0

        assert http(port, "/livez")[0] == 200
        assert http(port, "/readyz")[0] == 200
        assert http(port, "/nothing")[0] == 404
        assert http(port, "/metrics", method="POST")[0] == 405
    finally:
        service.stop()
    print(f"metrics: {len(after)} families parsed by prometheus_client; exact deltas; "
          "histograms cumulative; /livez /readyz 200, 404, 405")


if __name__ == "__main__":
    main()
