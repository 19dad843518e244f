"""loyalty_client -- a minimal Python client of the loyalty suite, for storefront back ends.

Messages are generated from the suite's own .proto files (`protoc --python_out`, Debian's
protobuf-compiler) the first time a client is made, and every unary RPC of a service becomes a
method of its stub, named as in the .proto. Calls carry a deadline, the bearer token (when one
is configured) and an `x-request-id`; failures raise LoyaltyError with the gRPC code and the
suite's machine-readable reason (trailing metadata `loyalty-error-reason`, docs/architecture.md#conventions).

    client = LoyaltyClient(gateway="127.0.0.1:50050", member="127.0.0.1:50051")
    member = client.register_member("shop-1", "signup-42", name="Ana Lima", phone="+6591234567")
    result = client.checkout("shop-1", member.id, "order-1001", [("SKU-1", 2, 1500)])

Needs Debian's python3-grpcio and python3-protobuf, run with /usr/bin/python3.
"""
import glob
import importlib
import os
import subprocess
import sys
import tempfile
import uuid

import grpc

DEFAULT_PROTO_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "proto")
REASON_KEY = "loyalty-error-reason"


class LoyaltyError(Exception):
    """A failed call: `code` is a grpc.StatusCode, `reason` the suite's reason ("" if none)."""

    def __init__(self, code, reason, message):
        super().__init__(f"{code.name} {reason}: {message}" if reason else f"{code.name}: {message}")
        self.code = code
        self.reason = reason
        self.message = message


def generate(proto_dir=DEFAULT_PROTO_DIR, out_dir=None):
    """Generates Python messages for proto_dir/loyalty/v1/*.proto into out_dir (a new temporary
    folder by default), puts it on sys.path, and returns {name: module} ("member": member_pb2)."""
    out_dir = out_dir or tempfile.mkdtemp(prefix="loyalty-py-")
    protos = sorted(glob.glob(os.path.join(proto_dir, "loyalty", "v1", "*.proto")))
    if not protos:
        raise FileNotFoundError(f"no loyalty/v1/*.proto under {proto_dir}")
    os.makedirs(out_dir, exist_ok=True)
    subprocess.run(["protoc", "-I", proto_dir, "--python_out", out_dir]
                   + [os.path.relpath(p, proto_dir) for p in protos], check=True)
    if out_dir not in sys.path:
        sys.path.insert(0, out_dir)
    return {os.path.basename(p)[:-len(".proto")]:
            importlib.import_module("loyalty.v1." + os.path.basename(p)[:-len(".proto")] + "_pb2")
            for p in protos}


class _Stub:
    """One method per unary RPC of a service, taking a request message and returning the
    response message."""

    def __init__(self, channel, service, messages, call_options):
        self.service = service.full_name
        for method in service.methods:
            if method.client_streaming or method.server_streaming:
                continue
            rpc = channel.unary_unary(
                f"/{service.full_name}/{method.name}",
                request_serializer=lambda m: m.SerializeToString(),
                response_deserializer=messages[method.output_type.full_name].FromString)
            setattr(self, method.name, self._wrap(rpc, method.name, call_options))

    @staticmethod
    def _wrap(rpc, name, call_options):
        def call(request, timeout=None, request_id=None):
            timeout_s, metadata = call_options(timeout, request_id)
            try:
                return rpc(request, timeout=timeout_s, metadata=metadata)
            except grpc.RpcError as e:
                trailers = dict(e.trailing_metadata() or ())
                raise LoyaltyError(e.code(), trailers.get(REASON_KEY, ""), e.details()) from None
        call.__name__ = name
        return call


class LoyaltyClient:
    """Stubs for the suite's services over one channel per address. `token` is sent as
    `authorization: Bearer <token>`; `root_certificates` (PEM bytes) switches to TLS."""

    def __init__(self, gateway=None, member=None, token=None, timeout_s=5.0,
                 root_certificates=None, proto_dir=DEFAULT_PROTO_DIR, gen_dir=None):
        self.pb = generate(proto_dir, gen_dir)
        self.timeout_s = timeout_s
        self.token = token
        self._channels = []
        self._messages = {}
        self._services = {}
        for module in self.pb.values():
            for name in module.DESCRIPTOR.message_types_by_name:
                cls = getattr(module, name)
                self._messages[cls.DESCRIPTOR.full_name] = cls
            for service in module.DESCRIPTOR.services_by_name.values():
                self._services[service.name] = service
        creds = grpc.ssl_channel_credentials(root_certificates) if root_certificates else None
        self.gateway = self._stub(gateway, "Gateway", creds) if gateway else None
        self.member = self._stub(member, "MemberService", creds) if member else None

    def _stub(self, addr, service_name, creds):
        service = self._services.get(service_name)
        if service is None:
            return None  # that service's .proto has not landed yet
        channel = grpc.secure_channel(addr, creds) if creds else grpc.insecure_channel(addr)
        self._channels.append(channel)
        return _Stub(channel, service, self._messages, self._call_options)

    def _call_options(self, timeout_s, request_id):
        metadata = [("x-request-id", request_id or "py-" + uuid.uuid4().hex[:16])]
        if self.token:
            metadata.append(("authorization", f"Bearer {self.token}"))
        return (timeout_s or self.timeout_s), metadata

    def message(self, type_name, /, **fields):
        """A loyalty.v1 message by short name: client.message("MemberProfile", name="Ana")."""
        return self._messages[f"loyalty.v1.{type_name}"](**fields)

    def close(self):
        for channel in self._channels:
            channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- the storefront's two everyday flows ----

    def register_member(self, merchant_id, idempotency_key, referral_code="", **profile):
        """Registers a customer and returns the new loyalty.v1.Member. Through the gateway's
        RegisterMember saga (member + referral + welcome rewards) when the gateway is
        configured and its contract is present; otherwise straight to member-svc's
        CreateMember (profile only). Retrying with the same idempotency_key returns the same
        member."""
        profile_msg = self.message("MemberProfile", **profile)
        if self.gateway is not None and hasattr(self.gateway, "RegisterMember"):
            req = self.message("GatewayRegisterMemberRequest", merchant_id=merchant_id,
                               idempotency_key=idempotency_key, profile=profile_msg,
                               referral_code=referral_code)
            return self.gateway.RegisterMember(req).registration.member
        if self.member is None:
            raise RuntimeError("neither the gateway nor member-svc is configured")
        if referral_code:
            raise RuntimeError("a referral code needs the gateway's RegisterMember")
        req = self.message("CreateMemberRequest", merchant_id=merchant_id,
                           idempotency_key=idempotency_key, profile=profile_msg)
        return self.member.CreateMember(req).member

    def checkout(self, merchant_id, member_id, order_id, lines, redeem_points=0,
                 wallet_cents=0, payment_ref=""):
        """Runs a checkout through the gateway: BeginCheckout (prices the cart, reserves points,
        wallet money and promotions; answers what the storefront must still collect in
        checkout.breakdown.amount_due_cents), then, once the storefront has collected that
        amount (payment_ref names its payment; required when something is due),
        CompleteCheckout. `lines` are (sku, quantity, unit_price_cents). Returns the
        loyalty.v1.GatewayCheckout after Begin and after Complete. Idempotency keys derive from
        the order id, so a retry of the same order never applies twice."""
        if self.gateway is None or not hasattr(self.gateway, "BeginCheckout"):
            raise RuntimeError("checkout needs the gateway (loyalty.v1.Gateway), "
                               "which this build does not have yet")
        cart = self.message("GatewayCart", lines=[
            self.message("GatewayCartLine", line_id=str(i + 1), sku=sku, quantity=qty,
                         unit_price_cents=price)
            for i, (sku, qty, price) in enumerate(lines)])
        begin = self.gateway.BeginCheckout(self.message(
            "GatewayBeginCheckoutRequest", merchant_id=merchant_id,
            idempotency_key=f"{order_id}:begin", order_id=order_id, member_id=member_id,
            cart=cart, payment=self.message("GatewayPaymentChoice", redeem_points=redeem_points,
                                            wallet_cents=wallet_cents))).checkout
        complete = self.gateway.CompleteCheckout(self.message(
            "GatewayCompleteCheckoutRequest", merchant_id=merchant_id,
            idempotency_key=f"{order_id}:complete", checkout_id=begin.checkout_id,
            payment_ref=payment_ref)).checkout
        return begin, complete
