# syntax=docker/dockerfile:1
# zuul-bridge image for docker users and the release workflow: a static Go binary FROM
# scratch with a CA bundle and the non-root user 65532.
#
#   docker build --build-arg VERSION=$(git describe --tags --always) \
#                --build-arg COMMIT=$(git rev-parse HEAD) -t zuul-bridge .
#   docker run --rm zuul-bridge version
#
# The same image as deploy/image/build.sh builds offline with buildah (docs/container-image.md):
# the binary and the files come from deploy/image/rootfs.sh in both, and the final stage below
# is deploy/image/Containerfile (deploy/image/check.sh fails when they differ).

# The build runs on the builder's platform and cross-compiles for the target's (multi-arch
# builds need no emulation).
FROM --platform=$BUILDPLATFORM golang:1.26 AS build
WORKDIR /src
# Dependencies first: this layer is cached until go.mod or go.sum change.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG VERSION=dev
ARG COMMIT=unknown
ARG TARGETOS
ARG TARGETARCH
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    VERSION=${VERSION} COMMIT=${COMMIT} GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
    sh deploy/image/rootfs.sh /out/rootfs

FROM scratch AS rootfs
COPY --from=build /out/rootfs/ /

# From here on the same as deploy/image/Containerfile.
FROM scratch
ARG VERSION=dev
ARG COMMIT=unknown
LABEL org.opencontainers.image.title="zuul-bridge" \
      org.opencontainers.image.description="Zuul MQTT reports to NATS and the SCS status page" \
      org.opencontainers.image.source="https://github.com/SovereignCloudStack/zuul-bridge" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${COMMIT}"
COPY --from=rootfs / /
COPY --from=rootfs --chown=65532:65532 /home /home
# Numeric, so that the kubelet's runAsNonRoot can verify it without reading /etc/passwd.
USER 65532:65532
# /healthz, /readyz and /metrics (BRIDGE_HTTP_ADDR, default :8080).
EXPOSE 8080
ENTRYPOINT ["/bridge"]
CMD ["run"]
