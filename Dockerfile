# syntax=docker/dockerfile:1
#
# The relay container image: one static binary, the first-party WASM plugins
# and their precompiled wazero cache, on distroless/static as a non-root user.
#
#   docker build --build-arg VERSION=$(git describe --tags --always) -t relay .
#   docker run --rm -p 7328:7328 -e RELAY_AUTHORITY_TOKENS=change-me relay
#
# Configuration is environment variables only (`docker run --rm relay -h`
# lists them); examples/deploy/README.md covers Cloud Run, Fly.io,
# Kubernetes and docker compose.
#
# Image layout:
#   /relay              the relay (ENTRYPOINT); `/relay healthcheck` probes it
#   /plugins/NAME.wasm  first-party plugins, loaded only when configured
#   /cache/             wazero compilation cache for those plugins, owned by
#                       the relay's user (65532) so a cache miss can be
#                       written; hits also work on a read-only root filesystem

# Build stage. It runs examples/deploy/build-image.sh, the same script
# examples/deploy/image_test.go (TestImage) runs in CI: that script is the one source of
# truth for what goes into the image. Not cross-compiled (no --platform=
# $BUILDPLATFORM): precompiling plugins runs the relay built for the target
# architecture.
ARG GO_VERSION=1.26
FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG VERSION=dev
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    VERSION="$VERSION" sh examples/deploy/build-image.sh /out

# Final stage: no shell, no package manager; CA certificates, /etc/passwd
# with the nonroot user (65532) and tzdata come with distroless/static.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/relay /relay
COPY --from=build /out/plugins/ /plugins/
COPY --from=build --chown=65532:65532 /out/cache/ /cache/
USER 65532:65532
# Plugins (RELAY_PLUGINS=/plugins/NAME.wasm,...) load their precompiled
# machine code from here.
ENV RELAY_PLUGIN_CACHE_DIR=/cache
# PORT defaults to 7328; Cloud Run and Fly.io may set it. The relay listens
# on every interface (RELAY_HOST empty) and serves WebSockets on any path,
# GET /healthz (alive) and GET /readyz (accepting clients; 503 while it
# drains after SIGTERM, within RELAY_SHUTDOWN_TIMEOUT, default 8s).
EXPOSE 7328
STOPSIGNAL SIGTERM
# No shell in the image: the binary probes itself (GET /readyz on its PORT).
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["/relay", "healthcheck"]
ENTRYPOINT ["/relay"]
