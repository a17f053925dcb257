# syntax=docker/dockerfile:1
# zuul-bridge image: a static Go binary on distroless, running as non-root.
#
#   docker build --build-arg VERSION=$(git describe --tags --always) \
#                --build-arg COMMIT=$(git rev-parse HEAD) -t zuul-bridge .
#   docker run --rm zuul-bridge version

FROM golang:1.26 AS build
WORKDIR /src
# Dependencies first: this layer is cached until go.mod or go.sum change.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG VERSION=dev
ARG COMMIT=unknown
# CGO off: a static binary that runs on distroless/static (no libc). -trimpath keeps
# build paths out of the binary; -s -w drop the symbol table and DWARF.
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=linux go build -trimpath -buildvcs=false \
      -ldflags "-s -w -X main.version=${VERSION} -X main.commit=${COMMIT}" \
      -o /out/bridge ./cmd/bridge \
 && /out/bridge version

FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=dev
ARG COMMIT=unknown
LABEL org.opencontainers.image.title="zuul-bridge" \
      org.opencontainers.image.description="Zuul MQTT reports to NATS and the SCS status page" \
      org.opencontainers.image.source="https://github.com/SovereignCloudStack/zuul-bridge" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${COMMIT}"
COPY --from=build /out/bridge /bridge
# The nonroot user of distroless (65532), numeric so that runAsNonRoot can verify it.
USER 65532:65532
# /healthz, /readyz and /metrics (BRIDGE_HTTP_ADDR, default :8080).
EXPOSE 8080
ENTRYPOINT ["/bridge"]
CMD ["run"]
