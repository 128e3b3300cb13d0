# syntax=docker/dockerfile:1
#
# telehub container image: a static binary on distroless, running as an
# unprivileged user, data on the /data volume.
#
#   docker build --build-arg VERSION=$(git describe --tags --always) -t telehub .
#   docker run -p 8080:8080 -p 1883:1883 -v telehub-data:/data telehub
#
# Flags after the image name are passed to telehub (e.g. --log-format json);
# every flag also has a TELEHUB_* variable (docker run -e ...):
# docker run --rm telehub --help lists them with their defaults.

# ---- build ---------------------------------------------------------------
FROM golang:1.26 AS build
WORKDIR /src

# Modules first, so that a source change does not download them again.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download

COPY . .
ARG VERSION=dev
# Static (no cgo: distroless/static has no libc), reproducible paths,
# stripped, and the version reported by `telehub version` and
# telehub_build_info.
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X github.com/telehub/telehub/internal/hub.Version=${VERSION}" \
      -o /out/telehub ./cmd/telehub

# The runtime image has no shell to create the data directory with, so it is
# made here and copied over owned by the nonroot user (65532). A new named
# volume mounted on /data starts as a copy of it, and so is writable.
RUN mkdir -p /out/data

# ---- run -----------------------------------------------------------------
FROM gcr.io/distroless/static-debian12:nonroot

COPY --from=build /out/telehub /telehub
COPY --from=build --chown=65532:65532 /out/data /data
VOLUME /data

# HTTP (REST, SSE and WebSocket watchers, WebSocket devices, dashboard,
# /metrics) and the embedded MQTT broker.
EXPOSE 8080 1883

# Inside a container the hub must listen on every interface to be reached
# through published ports. telehub refuses that without credentials unless
# told it is insecure on purpose: no device or watcher credentials exist
# yet, so the container network (which ports are published, to whom) is the
# security boundary. Publish the ports to trusted networks only, e.g.
# -p 127.0.0.1:8080:8080.
#
# Every variable here can be overridden with docker run -e; an empty value
# counts like an empty flag: -e TELEHUB_MQTT_ADDR= runs without the
# embedded broker (as does -e TELEHUB_MQTT_BROKER=tcp://broker:1883).
ENV TELEHUB_HTTP_ADDR=0.0.0.0:8080 \
    TELEHUB_MQTT_ADDR=0.0.0.0:1883 \
    TELEHUB_DATA_DIR=/data \
    TELEHUB_INSECURE=true

# `telehub healthcheck` reads the same configuration and asks /healthz on
# loopback; it exits non-zero when the hub does not answer 200.
HEALTHCHECK --interval=30s --timeout=10s --start-period=10s --retries=3 \
    CMD ["/telehub", "healthcheck"]

USER nonroot:nonroot
ENTRYPOINT ["/telehub"]
