#!/usr/bin/python3
"""A storefront's sign-up and checkout with the Python client (loyalty_client.py).

    /usr/bin/python3 clients/python/example.py --merchant shop-1 \\
        --gateway 127.0.0.1:50050 --member 127.0.0.1:50051 [--token TOKEN]

Registers a member (and shows that retrying with the same idempotency key returns the same
member, and how a domain error reads), then runs a checkout through the gateway when the
gateway is there. Prints one JSON object with what happened."""
import argparse
import json
import sys
import uuid

import loyalty_reasons
from loyalty_client import LoyaltyClient, LoyaltyError


def loyalty_state_name(client, state):
    """The name of a GatewaySagaState number, e.g. "GATEWAY_SAGA_STATE_COMPLETED"."""
    enum = client.pb["gateway"].DESCRIPTOR.enum_types_by_name["GatewaySagaState"]
    return enum.values_by_number[state].name


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--merchant", required=True)
    ap.add_argument("--gateway")
    ap.add_argument("--member")
    ap.add_argument("--token")
    ap.add_argument("--phone", default="+6591234567")
    args = ap.parse_args()

    out = {}
    with LoyaltyClient(gateway=args.gateway, member=args.member, token=args.token) as client:
        key = "signup-" + uuid.uuid4().hex[:12]
        member = client.register_member(args.merchant, key, name="Ana Lima", phone=args.phone,
                                        email="ana@example.com")
        again = client.register_member(args.merchant, key, name="Ana Lima", phone=args.phone,
                                       email="ana@example.com")
        out["member_id"] = member.id
        out["replayed_same_member"] = again.id == member.id
        try:
            client.register_member(args.merchant, "signup-other", name="Ana Clone",
                                   phone=args.phone)
            out["duplicate"] = "accepted"
        except LoyaltyError as e:
            out["duplicate"] = {"code": e.code.name, "reason": e.reason}
            out["duplicate_is_phone_taken"] = e.reason == loyalty_reasons.PHONE_TAKEN
        try:
            begin, complete = client.checkout(args.merchant, member.id, "order-" + key,
                                              [("SKU-TEA", 2, 450), ("SKU-CAKE", 1, 1200)],
                                              payment_ref="psp-" + key)
            out["checkout"] = {"checkout_id": begin.checkout_id,
                               "amount_due_cents": begin.breakdown.amount_due_cents,
                               "state": loyalty_state_name(client, complete.state)}
        except RuntimeError as e:
            out["checkout"] = f"skipped: {e}"
        except LoyaltyError as e:
            if e.code.name != "UNIMPLEMENTED":
                raise
            out["checkout"] = f"skipped: a service the gateway calls is not built yet ({e})"
    json.dump(out, sys.stdout)
    print()


if __name__ == "__main__":
    main()
