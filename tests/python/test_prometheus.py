#!/usr/bin/python3
"""A real Prometheus server (Debian's `prometheus` 2.42) scraping a running suite of the six
services, with the project's alert rules loaded (the rule groups of the PrometheusRule in
deploy/k8s/components/monitoring, as tests/deploy/check_monitoring.py extracts them for
promtool). Through Prometheus' HTTP API:

- every service is a target and every target is up;
- after one Checkout through the gateway, the gateway's series for it are there:
  grpc_server_handled_total of Gateway/Checkout with code OK, and
  loyalty_sagas_finished_total{saga_type="checkout",state="completed"};
- every rule of the file is loaded and evaluated without error, and every rule's expression
  evaluates without error through /api/v1/query;
- the `traceparent` the client sent with the Checkout arrives at every participant of that
  checkout with the same trace id, read from the services' JSON log lines: the participants are
  the services the gateway's grpc_client_handled_total says it called during the checkout (all
  five: the checkout pays partly from the wallet), the gateway's lines are children of the
  client's span and the participants' lines children of the gateway's calls.

Health/Watch sending NOT_SERVING on SIGTERM is python.test_probes (watch_sees_the_drain), not
repeated here. Nothing waits a fixed time: every condition is polled until it holds or a
generous deadline passes.

Usage: test_prometheus.py BUILD_DIR PROTO_DIR OUT_DIR (needs LOYALTY_PG_DSN and
LOYALTY_REDIS_URL, as scripts/test exports; `prometheus` from the Debian package, which
scripts/test installs)."""
import glob
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

import grpc
import yaml
from prometheus_client.parser import text_string_to_metric_families

import svc

PARTICIPANTS = ["member-svc", "points-svc", "wallet-svc", "referral-svc", "promo-svc"]
GRPC_SERVICES = {"loyalty.v1.MemberService": "member-svc", "loyalty.v1.PointsService": "points-svc",
                 "loyalty.v1.WalletService": "wallet-svc",
                 "loyalty.v1.ReferralService": "referral-svc",
                 "loyalty.v1.PromoService": "promo-svc"}
DEADLINE_S = 180  # generous: a busy machine with sanitizers on


def poll(what, fn, timeout_s=DEADLINE_S):
    """Calls fn until it returns a true value, which is returned; fails after timeout_s with
    what fn last returned."""
    deadline = time.time() + timeout_s
    last = None
    while time.time() < deadline:
        try:
            last = fn()
        except (OSError, urllib.error.URLError, ValueError) as e:
            last = e
        if last and not isinstance(last, Exception):
            return last
        time.sleep(0.2)
    raise SystemExit(f"{what}: not within {timeout_s} s; last: {last}")


def http_json(url):
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read().decode())


class Prometheus:
    def __init__(self, workdir, config, rules):
        self.port = svc.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.dir = workdir
        with open(os.path.join(workdir, "rules.yaml"), "w", encoding="utf-8") as f:
            yaml.safe_dump(rules, f, sort_keys=False)
        config["rule_files"] = [os.path.join(workdir, "rules.yaml")]
        self.config_path = os.path.join(workdir, "prometheus.yaml")
        with open(self.config_path, "w", encoding="utf-8") as f:
            yaml.safe_dump(config, f, sort_keys=False)
        self.log_path = os.path.join(workdir, "prometheus.log")
        self.proc = None

    def start(self):
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                ["prometheus", f"--config.file={self.config_path}",
                 f"--storage.tsdb.path={os.path.join(self.dir, 'data')}",
                 f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
                stdout=log, stderr=subprocess.STDOUT)

        def ready():
            if self.proc.poll() is not None:
                raise SystemExit(f"prometheus exited {self.proc.returncode}; see {self.log_path}")
            with urllib.request.urlopen(self.url + "/-/ready", timeout=5) as resp:
                return resp.status == 200
        poll("prometheus ready", ready)

    def api(self, path, **params):
        url = f"{self.url}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            body = http_json(url)
        except urllib.error.HTTPError as e:  # 400/422 carry the error as JSON
            body = json.loads(e.read().decode())
        return body

    def query(self, expr):
        """The result of an instant query; fails the test when Prometheus reports an error."""
        body = self.api("query", query=expr)
        assert body["status"] == "success", (expr, body)
        return body["data"]["result"]

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=60)


def psql(dsn, sql):
    subprocess.run(["psql", dsn, "-v", "ON_ERROR_STOP=1", "-qc", sql], check=True,
                   capture_output=True, text=True)


def scrape(port):
    """{(family, frozenset(labels)): value} of one /metrics page, parsed by prometheus_client."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def client_calls_by_service(samples):
    """grpc_client_handled_total summed by grpc_service."""
    out = {}
    for (name, labels), v in samples.items():
        if name == "grpc_client_handled_total":
            service = dict(labels)["grpc_service"]
            out[service] = out.get(service, 0) + v
    return out


def trace_lines(log_path, trace_id):
    """The JSON log lines of a service in one trace."""
    out = []
    with open(log_path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if not line.startswith("{"):
                continue  # not a log line of the service (a sanitizer's report, say)
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get("trace_id") == trace_id:
                out.append(entry)
    return out


def top_up(channel, gw, merchant, member_id):
    """10.00 into the member's wallet, so that the checkout can pay with it."""
    call = channel.unary_unary("/loyalty.v1.Gateway/TopUpWallet",
                               request_serializer=gw.GatewayTopUpWalletRequest.SerializeToString,
                               response_deserializer=gw.GatewayTopUpWalletResponse.FromString)
    resp = call(gw.GatewayTopUpWalletRequest(merchant_id=merchant, idempotency_key="top-up-prom",
                                             member_id=member_id, paid_cents=1000,
                                             payment_ref="psp-top-up"), timeout=30)
    assert resp.balance.available_cents == 1000, resp


def checkout(channel, gw, merchant, member_id, traceparent):
    """One Checkout() (Begin and Complete in one call) sent with the client's traceparent, 5.00
    of it paid from the wallet."""
    call = channel.unary_unary("/loyalty.v1.Gateway/Checkout",
                               request_serializer=gw.GatewayCheckoutRequest.SerializeToString,
                               response_deserializer=gw.GatewayCheckoutResponse.FromString)
    cart = gw.GatewayCart(lines=[
        gw.GatewayCartLine(line_id="1", sku="SKU-TEA", quantity=2, unit_price_cents=450),
        gw.GatewayCartLine(line_id="2", sku="SKU-CAKE", quantity=1, unit_price_cents=1200)])
    req = gw.GatewayCheckoutRequest(merchant_id=merchant, idempotency_key="order-prom:checkout",
                                    order_id="order-prom", member_id=member_id, cart=cart,
                                    payment=gw.GatewayPaymentChoice(wallet_cents=500),
                                    payment_ref="psp-prom")
    return call(req, timeout=30, metadata=[("traceparent", traceparent),
                                           ("tracestate", "shop=prom")]).checkout


def register(channel, gw, member_pb2, merchant):
    call = channel.unary_unary("/loyalty.v1.Gateway/RegisterMember",
                               request_serializer=gw.GatewayRegisterMemberRequest.SerializeToString,
                               response_deserializer=gw.GatewayRegisterMemberResponse.FromString)
    reg = call(gw.GatewayRegisterMemberRequest(
        merchant_id=merchant, idempotency_key="signup-prom",
        profile=member_pb2.MemberProfile(name="Prom Etheus")), timeout=30).registration
    get = channel.unary_unary("/loyalty.v1.Gateway/GetSaga",
                              request_serializer=gw.GatewayGetSagaRequest.SerializeToString,
                              response_deserializer=gw.GatewayGetSagaResponse.FromString)
    final = (gw.GATEWAY_SAGA_STATE_COMPLETED, gw.GATEWAY_SAGA_STATE_CANCELLED,
             gw.GATEWAY_SAGA_STATE_NEEDS_ATTENTION)

    def finished():
        saga = get(gw.GatewayGetSagaRequest(merchant_id=merchant, saga_id=reg.saga_id),
                   timeout=30).saga
        return saga if saga.state in final else None
    saga = poll("the registration saga finishes", finished)
    assert saga.state == gw.GATEWAY_SAGA_STATE_COMPLETED, saga
    return reg.member.id


def check_targets(prom, services):
    """Every service's endpoint has been scraped and parsed. A target counts once any scrape
    of it succeeded: on a loaded machine one scrape may time out while another target's
    succeeds, so they are never required to be up at the same moment."""
    want = {s.name: f"127.0.0.1:{s.metrics_port}" for s in services}
    seen_up = {}

    def all_seen_up():
        targets = prom.api("targets", state="active")["data"]["activeTargets"]
        for t in targets:
            if t["health"] == "up":
                seen_up[t["labels"]["job"]] = t["labels"]["instance"]
        return seen_up == want and len(targets) == len(want)
    poll("every target scraped successfully", all_seen_up)
    # Every target's series reached the database (up == 1 at some scrape of the window).
    up = prom.query("max_over_time(up[10m])")
    assert sorted(r["metric"]["job"] for r in up) == sorted(want), up
    assert all(r["value"][1] == "1" for r in up), up


def check_checkout_series(prom):
    handled = ('grpc_server_handled_total{job="gateway",grpc_type="unary",'
               'grpc_service="loyalty.v1.Gateway",grpc_method="Checkout",grpc_code="OK"}')
    finished = ('loyalty_sagas_finished_total{job="gateway",saga_type="checkout",'
                'state="completed"}')
    for expr in (handled, finished):
        # The stack is the test's own (its own database): exactly the one checkout.
        result = poll(f"{expr} == 1 in Prometheus",
                      lambda e=expr: [r for r in prom.query(e) if r["value"][1] == "1"])
        assert len(result) == 1, (expr, result)


def check_rules(prom, rules):
    want = [r.get("alert") or r.get("record") for g in rules["groups"] for r in g["rules"]]

    def evaluated():
        groups = prom.api("rules")["data"]["groups"]
        loaded = [r for g in groups for r in g["rules"]]
        bad = [(r["name"], r.get("lastError")) for r in loaded if r.get("health") != "ok"]
        if sorted(r["name"] for r in loaded) != sorted(want) or bad:
            return None
        return loaded
    poll("every rule loaded and evaluated without error", evaluated)
    for group in rules["groups"]:
        for rule in group["rules"]:
            prom.query(rule["expr"])  # asserts status success
    return len(want)


def check_trace(trace_id, client_span, participants, logs):
    gateway = trace_lines(logs["gateway"], trace_id)
    assert any(e.get("rpc") == "/loyalty.v1.Gateway/Checkout" and e.get("status") == "OK"
               for e in gateway), f"no Checkout access line in the trace; see {logs['gateway']}"
    assert all(e.get("parent_span_id") == client_span for e in gateway), \
        "every gateway line of the trace is a child of the client's span"
    for name in participants:
        lines = trace_lines(logs[name], trace_id)
        assert any("status" in e for e in lines), \
            f"{name} took part in the checkout but logged no call of its trace; see {logs[name]}"
        for e in lines:
            assert e.get("parent_span_id") and e["parent_span_id"] != client_span, \
                (name, "a participant's span is a child of the gateway's call", e)
            assert e.get("span_id") != client_span, (name, e)


def main():
    build_dir, proto_dir, out_dir = sys.argv[1:4]
    if shutil.which("prometheus") is None:
        raise SystemExit("prometheus is missing (Debian package prometheus; scripts/test "
                         "installs it)")
    source_dir = os.path.dirname(os.path.abspath(proto_dir))
    protos = sorted(os.path.relpath(p, proto_dir)
                    for p in glob.glob(os.path.join(proto_dir, "loyalty/v1/*.proto")))
    svc.generate(proto_dir, out_dir, ["grpc/health/v1/health.proto"] + protos)
    health_pb2 = svc.load(out_dir, "grpc/health/v1/health_pb2.py", "health_pb2")
    from loyalty.v1 import gateway_pb2 as gw, member_pb2

    with open(os.path.join(source_dir, "deploy/k8s/components/monitoring/prometheusrule.yaml"),
              encoding="utf-8") as f:
        rules = yaml.safe_load(f)["spec"]  # the PrometheusRule's spec is a rule file

    os.makedirs(out_dir, exist_ok=True)
    work = tempfile.mkdtemp(prefix="prometheus-", dir=out_dir)
    # A database of its own: the gateway's recovery job takes over any unfinished saga of its
    # database, and the checkout counters must be this test's alone.
    base_dsn = os.environ["LOYALTY_PG_DSN"]
    database = "test_prom_" + secrets.token_hex(6)
    psql(base_dsn, f"CREATE DATABASE {database}")
    dsn = f"{base_dsn} dbname={database}"  # in a conninfo string the last value wins
    env = {"LOYALTY_PG_DSN": dsn, "LOG_LEVEL": "info"}
    started, prom = [], None
    try:
        logs = {}
        for name in PARTICIPANTS + ["gateway"]:
            logs[name] = os.path.join(work, f"{name}.log")
            started.append(svc.Service(build_dir, name, dict(env), log_path=logs[name]))
        addrs = {f"{s.name.split('-')[0].upper()}_SVC_ADDR": s.addr for s in started[:-1]}
        started[-1].env.update(addrs)
        for s in started:
            s.start(health_pb2)

        config = {
            # Scrapes often enough for a short test, with a timeout a loaded machine
            # (sanitizer builds, CI beside other jobs) still meets.
            "global": {"scrape_interval": "2s", "scrape_timeout": "2s",
                       "evaluation_interval": "2s"},
            "scrape_configs": [{"job_name": s.name,
                                "static_configs": [{"targets": [f"127.0.0.1:{s.metrics_port}"]}]}
                               for s in started],
        }
        prom = Prometheus(work, config, rules)
        prom.start()
        check_targets(prom, started)

        gateway = started[-1]
        merchant = "prom-" + secrets.token_hex(5)
        trace_id, client_span = secrets.token_hex(16), secrets.token_hex(8)
        with grpc.insecure_channel(gateway.addr) as channel:
            member_id = register(channel, gw, member_pb2, merchant)
            top_up(channel, gw, merchant, member_id)
            before = client_calls_by_service(scrape(gateway.metrics_port))
            done = checkout(channel, gw, merchant, member_id, f"00-{trace_id}-{client_span}-01")
            after = client_calls_by_service(scrape(gateway.metrics_port))
        assert done.state == gw.GATEWAY_SAGA_STATE_COMPLETED, done
        called = sorted(GRPC_SERVICES[s] for s in after
                        if after[s] > before.get(s, 0) and s in GRPC_SERVICES)
        assert called == sorted(PARTICIPANTS), f"the checkout called {called}"

        check_checkout_series(prom)
        n_rules = check_rules(prom, rules)
        check_trace(trace_id, client_span, called, logs)
    finally:
        if prom is not None:
            prom.stop()
        for s in reversed(started):
            s.stop()
        psql(base_dsn, f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
    shutil.rmtree(work, ignore_errors=True)
    print(f"prometheus: 6 targets up; the checkout's series there; {n_rules} rules evaluated; "
          f"traceparent seen by the gateway and {', '.join(called)}")


if __name__ == "__main__":
    main()
