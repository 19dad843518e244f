#!/usr/bin/python3
"""Server reflection as grpcurl uses it, on grpc.reflection.v1 and on v1alpha, against the real
member-svc: list the services, describe each (file_containing_symbol, with every transitive
dependency in the answer), build a DescriptorPool from nothing but those answers and call
CreateMember and Health/Check with messages made from it; in-band errors that keep the stream
open; several requests on one stream; the stream's end on half-close; an idle stream at SIGTERM
does not keep the server from a clean exit; the bearer token guards reflection too.

Usage: test_reflection.py BUILD_DIR PROTO_DIR OUT_DIR (needs LOYALTY_PG_DSN and
LOYALTY_REDIS_URL, as scripts/test exports)."""
import queue
import sys
import threading
import time
import uuid

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

import svc

VERSIONS = ("v1", "v1alpha")
EXPECTED_SERVICES = {"grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection",
                     "grpc.reflection.v1alpha.ServerReflection", "loyalty.v1.AuditService",
                     "loyalty.v1.BatchService", "loyalty.v1.MemberService"}


class Stream:
    """One ServerReflectionInfo call driven request by request, as grpcurl drives it."""

    def __init__(self, channel, version, refl, metadata=None):
        self.refl = refl
        self.requests = queue.Queue()
        call = channel.stream_stream(
            f"/grpc.reflection.{version}.ServerReflection/ServerReflectionInfo",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=refl.ServerReflectionResponse.FromString)
        self.responses = call(iter(self.requests.get, None), timeout=30, metadata=metadata)

    def ask(self, **kw):
        req = self.refl.ServerReflectionRequest(host="localhost", **kw)
        self.requests.put(req)
        resp = next(self.responses)
        assert resp.original_request == req, (resp.original_request, req)
        assert resp.valid_host == "localhost", resp.valid_host
        return resp

    def close(self):
        """Half-closes; the server must end the stream with OK after answering everything."""
        self.requests.put(None)
        rest = list(self.responses)
        assert rest == [], rest
        assert self.responses.code() == grpc.StatusCode.OK, self.responses.code()


def files_of(resp):
    assert resp.WhichOneof("message_response") == "file_descriptor_response", resp
    out = []
    for raw in resp.file_descriptor_response.file_descriptor_proto:
        fd = descriptor_pb2.FileDescriptorProto()
        fd.ParseFromString(raw)
        out.append(fd)
    return out


def check_closed_under_deps(files):
    names = {f.name for f in files}
    for f in files:
        for dep in f.dependency:
            assert dep in names, f"{f.name} imports {dep}, which the answer left out"


def add_to_pool(pool, files, added):
    """Adds files in dependency order, as protoreflect does when it links what grpcurl got."""
    pending = {f.name: f for f in files if f.name not in added}
    while pending:
        ready = [f for f in pending.values() if all(d in added for d in f.dependency)]
        assert ready, f"unresolvable dependencies among {sorted(pending)}"
        for f in ready:
            pool.Add(f)
            added.add(f.name)
            del pending[f.name]


def message_class(pool, full_name):
    desc = pool.FindMessageTypeByName(full_name)
    if hasattr(message_factory, "GetMessageClass"):
        return message_factory.GetMessageClass(desc)
    return message_factory.MessageFactory(pool).GetPrototype(desc)


def grpcurl_steps(channel, version, refl):
    """list, describe every service and method, then call through dynamic messages."""
    s = Stream(channel, version, refl)
    listed = s.ask(list_services="")
    assert listed.WhichOneof("message_response") == "list_services_response", listed
    services = {x.name for x in listed.list_services_response.service}
    assert services == EXPECTED_SERVICES, services

    pool = descriptor_pool.DescriptorPool()
    added = set()
    for name in sorted(services):
        files = files_of(s.ask(file_containing_symbol=name))
        assert name.rsplit(".", 1)[0] == files[0].package, (name, files[0].name)
        check_closed_under_deps(files)
        add_to_pool(pool, files, added)
        sd = pool.FindServiceByName(name)
        for m in sd.methods:
            # describe <method>: the method symbol resolves to the service's file
            by_method = files_of(s.ask(file_containing_symbol=f"{name}.{m.name}"))
            assert by_method[0].name == sd.file.name, (m.name, by_method[0].name)
            assert m.input_type.full_name and m.output_type.full_name

    # Symbols of every kind resolve to their file (describe on messages, fields, enums ...).
    for symbol in ("loyalty.v1.Member", "loyalty.v1.Member.id", "loyalty.v1.MemberProfile",
                   "loyalty.v1.MemberProfile.CustomAttributesEntry", "loyalty.v1.Gender",
                   "loyalty.v1.GENDER_FEMALE", "loyalty.v1.GetMemberRequest.lookup",
                   "loyalty.v1.PageRequest", "grpc.health.v1.HealthCheckResponse.ServingStatus",
                   "grpc.health.v1.HealthCheckResponse.SERVING"):
        files = files_of(s.ask(file_containing_symbol=symbol))
        check_closed_under_deps(files)
    by_name = files_of(s.ask(file_by_filename="loyalty/v1/member.proto"))
    assert by_name[0].name == "loyalty/v1/member.proto"
    check_closed_under_deps(by_name)
    streaming = pool.FindMethodByName(
        f"grpc.reflection.{version}.ServerReflection.ServerReflectionInfo")
    assert streaming.client_streaming and streaming.server_streaming

    # Errors are in-band and the stream goes on.
    err = s.ask(file_containing_symbol="loyalty.v1.NoSuchThing")
    assert err.WhichOneof("message_response") == "error_response", err
    assert err.error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0], err
    err = s.ask(file_by_filename="no/such.proto")
    assert err.error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0], err
    err = s.ask()
    assert err.error_response.error_code == grpc.StatusCode.INVALID_ARGUMENT.value[0], err
    ext = s.ask(all_extension_numbers_of_type="loyalty.v1.Member")
    assert ext.all_extension_numbers_response.base_type_name == "loyalty.v1.Member", ext
    assert list(ext.all_extension_numbers_response.extension_number) == []
    again = s.ask(list_services="")
    assert {x.name for x in again.list_services_response.service} == EXPECTED_SERVICES
    s.close()

    # Calls with messages built only from what reflection returned (grpcurl's "invoke").
    create_req = message_class(pool, "loyalty.v1.CreateMemberRequest")
    create_resp = message_class(pool, "loyalty.v1.CreateMemberResponse")
    req = create_req(merchant_id="refl-" + uuid.uuid4().hex[:10],
                     idempotency_key="k-" + version)
    req.profile.name = "Reflected " + version
    req.profile.email = f"{version}@example.com"
    member = svc.unary(channel, "/loyalty.v1.MemberService/CreateMember", req, create_resp).member
    assert member.id.startswith("mbr_") and member.profile.email == f"{version}@example.com"
    check_req = message_class(pool, "grpc.health.v1.HealthCheckRequest")
    check_resp = message_class(pool, "grpc.health.v1.HealthCheckResponse")
    health = svc.unary(channel, "/grpc.health.v1.Health/Check", check_req(), check_resp)
    assert health.status == 1, health  # SERVING


def idle_stream_at_shutdown(build_dir, health_pb2, refl):
    """A client that opened a stream and went quiet must not hold the server past its grace
    period, and the server must still exit 0 (every call context freed, in order)."""
    service = svc.Service(build_dir, "member-svc", {"SHUTDOWN_GRACE_MS": "300"})
    service.start(health_pb2)
    channel = grpc.insecure_channel(service.addr)
    s = Stream(channel, "v1", refl)
    s.ask(list_services="")
    started = time.time()
    service.stop()
    assert time.time() - started < 20
    try:
        rest = list(s.responses)
        raise SystemExit(f"the idle stream ended without an error: {rest}")
    except grpc.RpcError as e:
        assert e.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED), e.code()
    channel.close()


def auth_guards_reflection(build_dir, health_pb2, refl):
    service = svc.Service(build_dir, "member-svc", {"LOYALTY_AUTH_TOKEN": "s3cret-token"})
    service.start(health_pb2)
    try:
        with grpc.insecure_channel(service.addr) as channel:
            s = Stream(channel, "v1alpha", refl)
            s.requests.put(refl.ServerReflectionRequest(list_services=""))
            s.requests.put(None)
            try:
                list(s.responses)
                raise SystemExit("reflection answered without the bearer token")
            except grpc.RpcError as e:
                assert e.code() == grpc.StatusCode.UNAUTHENTICATED, e.code()
            s = Stream(channel, "v1alpha", refl,
                       metadata=(("authorization", "Bearer s3cret-token"),))
            names = {x.name for x in s.ask(list_services="").list_services_response.service}
            assert names == EXPECTED_SERVICES, names
            s.close()
    finally:
        service.stop()


def many_streams_at_once(channel, refl):
    """Streams interleave on the worker pool: 16 concurrent streams, 20 requests each."""
    errors = []

    def run(i):
        try:
            s = Stream(channel, VERSIONS[i % 2], refl)
            for _ in range(20):
                got = files_of(s.ask(file_containing_symbol="loyalty.v1.MemberService"))
                assert got[0].name == "loyalty/v1/member.proto"
            s.close()
        except Exception as e:  # reported below, with the thread's index
            errors.append((i, repr(e)))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors


def main():
    build_dir, proto_dir, out_dir = sys.argv[1:4]
    svc.generate(proto_dir, out_dir, ["grpc/health/v1/health.proto",
                                      "grpc/reflection/v1/reflection.proto",
                                      "grpc/reflection/v1alpha/reflection.proto"])
    health_pb2 = svc.load(out_dir, "grpc/health/v1/health_pb2.py", "health_pb2")
    refl = {v: svc.load(out_dir, f"grpc/reflection/{v}/reflection_pb2.py", f"refl_{v}_pb2")
            for v in VERSIONS}

    service = svc.Service(build_dir, "member-svc")
    service.start(health_pb2)
    try:
        with grpc.insecure_channel(service.addr) as channel:
            for version in VERSIONS:
                grpcurl_steps(channel, version, refl[version])
            many_streams_at_once(channel, refl["v1"])
    finally:
        service.stop()
    idle_stream_at_shutdown(build_dir, health_pb2, refl["v1"])
    auth_guards_reflection(build_dir, health_pb2, refl["v1alpha"])
    print("reflection: list, describe, dynamic calls on v1 and v1alpha; errors in-band; "
          "16 concurrent streams; idle stream at SIGTERM; bearer token")


if __name__ == "__main__":
    main()
