# Dockerfile -- one multi-stage build for the whole suite, from Debian 12 packages only.
#
#   docker build --target member-svc -t loyalty/member-svc:dev .     (likewise for each service)
#
# `build` compiles every service folder present, the health probe and loyaltyctl; `runtime` is
# the shared small base (Debian slim, the five runtime libraries, a non-root user, the probe and
# loyaltyctl, so `kubectl exec deploy/gateway -- loyaltyctl health` works); one final
# stage per service adds only its binary, its port and its health check. Migrations travel
# inside each binary (`<service> --migrate` applies them and exits). The stage list is checked
# by tests/deploy/check_dockerfile.sh against the binaries' real library needs.

ARG DEBIAN_IMAGE=debian:12
ARG DEBIAN_SLIM_IMAGE=debian:12-slim

FROM ${DEBIAN_IMAGE} AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      cmake gcc make pkg-config libc6-dev libgrpc-dev libprotobuf-c-dev protobuf-c-compiler \
      protobuf-compiler libpq-dev libhiredis-dev libmicrohttpd-dev libssl-dev libyaml-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# Only the services that exist in this checkout are built (the suite grows folder by folder);
# tests and benchmarks are not part of an image.
RUN targets="loyalty-health loyaltyctl"; \
    for s in member-svc points-svc wallet-svc referral-svc promo-svc gateway; do \
      if [ -f "$s/CMakeLists.txt" ]; then targets="$targets $s"; fi; \
    done; \
    cmake -S . -B /build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLOYALTY_TESTS=OFF \
 && cmake --build /build -j"$(nproc)" --target $targets \
 && mkdir -p /out \
 && for t in $targets; do \
      f=$(find /build -type f -name "$t" -perm -u+x | head -n 1); \
      install -m 0755 -s "$f" "/out/$t"; \
    done

FROM ${DEBIAN_SLIM_IMAGE} AS runtime
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libgrpc29 libprotobuf-c1 libpq5 libhiredis0.14 libmicrohttpd12 libssl3 libyaml-0-2 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 loyalty \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin loyalty
COPY --from=build /out/loyalty-health /usr/local/bin/loyalty-health
COPY --from=build /out/loyaltyctl /usr/local/bin/loyaltyctl
# Numeric, so that Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001
ENV LOG_LEVEL=info
# `loyalty-health` without an address checks LISTEN_ADDR's port on 127.0.0.1.
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
  CMD ["/usr/local/bin/loyalty-health"]
STOPSIGNAL SIGTERM

FROM runtime AS gateway
COPY --from=build /out/gateway /usr/local/bin/gateway
ENV LISTEN_ADDR=0.0.0.0:50050
EXPOSE 50050
ENTRYPOINT ["/usr/local/bin/gateway"]

FROM runtime AS member-svc
COPY --from=build /out/member-svc /usr/local/bin/member-svc
ENV LISTEN_ADDR=0.0.0.0:50051
EXPOSE 50051
ENTRYPOINT ["/usr/local/bin/member-svc"]

FROM runtime AS points-svc
COPY --from=build /out/points-svc /usr/local/bin/points-svc
ENV LISTEN_ADDR=0.0.0.0:50052
EXPOSE 50052
ENTRYPOINT ["/usr/local/bin/points-svc"]

FROM runtime AS wallet-svc
COPY --from=build /out/wallet-svc /usr/local/bin/wallet-svc
ENV LISTEN_ADDR=0.0.0.0:50053
EXPOSE 50053
ENTRYPOINT ["/usr/local/bin/wallet-svc"]

FROM runtime AS referral-svc
COPY --from=build /out/referral-svc /usr/local/bin/referral-svc
ENV LISTEN_ADDR=0.0.0.0:50054
EXPOSE 50054
ENTRYPOINT ["/usr/local/bin/referral-svc"]

FROM runtime AS promo-svc
COPY --from=build /out/promo-svc /usr/local/bin/promo-svc
ENV LISTEN_ADDR=0.0.0.0:50055
EXPOSE 50055
ENTRYPOINT ["/usr/local/bin/promo-svc"]

# PgBouncer from Debian 12 for deploy/k8s/components/pgbouncer (transaction pooling in front of
# PostgreSQL; README "Connection budget"). Its settings are mounted under /etc/pgbouncer. SIGINT
# is PgBouncer's safe shutdown: it lets the transactions in flight finish, then exits.
FROM ${DEBIAN_SLIM_IMAGE} AS pgbouncer
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends pgbouncer \
 && rm -rf /var/lib/apt/lists/*
USER 10001:10001
EXPOSE 6432
STOPSIGNAL SIGINT
ENTRYPOINT ["/usr/sbin/pgbouncer"]
CMD ["/etc/pgbouncer/pgbouncer.ini"]
