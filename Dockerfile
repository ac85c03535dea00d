# syntax=docker/dockerfile:1
#
# tenant-worker's image: built with the Rust toolchain, run on distroless
# (glibc and libgcc, no shell, no package manager) as the non-root user.
#
#   docker build -t tenant-worker:0.1.0 .
#
# The sample chart is baked in under /opt/tenant-worker/k8s (the working
# directory, so the default --chart k8s/charts/tenant-app finds it), with
# k8s/plans.yaml beside it for reference (the shipped plans are also compiled
# into the binary); the Deployment in k8s/worker mounts the plans from a
# ConfigMap and points --plans at it.

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
# The registry and target directories are build caches (BuildKit), so a
# rebuild after a source change does not fetch and compile every dependency.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin tenant-worker \
    && cp target/release/tenant-worker /tenant-worker

FROM gcr.io/distroless/cc-debian12:nonroot
WORKDIR /opt/tenant-worker
COPY --from=build /tenant-worker /tenant-worker
COPY k8s/plans.yaml /opt/tenant-worker/k8s/plans.yaml
COPY k8s/charts/tenant-app /opt/tenant-worker/k8s/charts/tenant-app/
# distroless's "nonroot" user (65532), by number: Kubernetes can only verify
# runAsNonRoot for a numeric user.
USER 65532:65532
# /metrics, /healthz and /readyz (--metrics-listen).
EXPOSE 9090
ENTRYPOINT ["/tenant-worker"]
CMD ["run"]
