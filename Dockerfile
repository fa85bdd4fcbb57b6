# syntax=docker/dockerfile:1
#
# eventgate container image.
#
#   docker build --build-arg VERSION=v0.1.0 --build-arg COMMIT=$(git rev-parse HEAD) -t eventgate .
#
# Stage 1 builds a static binary (CGO off, version stamped); stage 2 is distroless "static" running
# as the non-root user 65532: no shell, no package manager, only the binary and CA certificates.
# deploy/deploytest runs this file's `go build` line (the one after the build-line marker) on every
# `go test`, so keep that command on the line(s) right after the marker.

ARG GO_VERSION=1.26

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
WORKDIR /src
# Modules first, so a source-only change reuses this layer.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG VERSION=dev
ARG COMMIT=unknown
ARG TARGETOS
ARG TARGETARCH
ENV CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH}
# build-line
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    go build -trimpath -ldflags "-s -w -X main.version=${VERSION} -X main.commit=${COMMIT}" -o /out/eventgate ./cmd/eventgate

FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=dev
ARG COMMIT=unknown
LABEL org.opencontainers.image.title="eventgate" \
      org.opencontainers.image.description="Kafka-native event gateway for Knative-style Channels and Subscriptions" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${COMMIT}" \
      org.opencontainers.image.source="https://github.com/eventgate/eventgate"
COPY --from=build /out/eventgate /eventgate
# 65532 is distroless's "nonroot"; numeric so Kubernetes can verify runAsNonRoot.
USER 65532:65532
# 8080: ingress (CloudEvents, webhooks). 9090: admin (/metrics, /livez, /readyz).
EXPOSE 8080 9090
ENTRYPOINT ["/eventgate"]
CMD ["serve"]
