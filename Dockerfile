# syntax=docker/dockerfile:1
# The podguard image: the release binary on distroless/cc (glibc, libgcc and CA certificates;
# no shell, no package manager), running as the non-root UID 65532.
#   docker build -t podguard .
#   docker buildx build --platform linux/amd64,linux/arm64 -t <registry>/podguard:<tag> --push .
# Builds natively for each platform (no cross-compilation), so the glibc of the build stage
# (Debian 12) matches the runtime image's.

ARG RUST_VERSION=1.89

FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
# Only what `cargo build --bin podguard` reads: the manifest (it names benches/engine.rs, so
# that must exist), the sources, and policies/, which the binary embeds as its built-in library.
COPY Cargo.toml Cargo.lock ./
COPY benches ./benches
COPY src ./src
COPY policies ./policies
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin podguard \
    && install -D -m 0555 target/release/podguard /out/podguard

FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="podguard" \
      org.opencontainers.image.description="Kubernetes validating admission webhook and CLI that checks pods against policies as code" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/podguard /usr/local/bin/podguard
# Numeric, so that runAsNonRoot can verify it without reading /etc/passwd.
USER 65532:65532
# HTTPS webhook, plain HTTP metrics.
EXPOSE 9443 9090
ENTRYPOINT ["/usr/local/bin/podguard"]
CMD ["--help"]
