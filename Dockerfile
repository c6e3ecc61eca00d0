# syntax=docker/dockerfile:1
# accelgate gateway image.
#
#   docker build -t accelgate .
#   docker run --rm -p 8080:8080 accelgate
#
# Build stage: the official Go image (Debian bookworm). CGO stays enabled so
# that the NVML discovery (go-nvml, loaded with dlopen at run time) works on
# GPU hosts; a CGO_ENABLED=0 build also compiles and reports NVML unavailable.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG CGO_ENABLED=1
RUN CGO_ENABLED=${CGO_ENABLED} go build -trimpath -ldflags="-s -w" -o /out/gateway ./cmd/gateway \
 && CGO_ENABLED=${CGO_ENABLED} go build -trimpath -ldflags="-s -w" -o /out/emulator ./cmd/emulator \
 && CGO_ENABLED=${CGO_ENABLED} go build -trimpath -ldflags="-s -w" -o /out/loadtest ./cmd/loadtest

# Runtime stage: a small glibc-based image (distroless base: glibc, CA
# certificates, tzdata, no shell). glibc is needed because libnvidia-ml.so.1,
# mounted in by the NVIDIA container toolkit, is linked against it.
FROM gcr.io/distroless/base-debian12:nonroot
COPY --from=build /out/gateway /out/emulator /out/loadtest /usr/local/bin/
# Inside a container 127.0.0.1 is unreachable from outside: listen on all
# interfaces. 8080 = HTTP (OpenAI API, KServe v2 REST), 8081 = gRPC (KServe v2).
# The emulator and the load tester ship in the image too:
#   docker run --rm --entrypoint loadtest accelgate simulate -workload mixed
ENV ACCELGATE_HTTP_ADDR=0.0.0.0:8080 \
    ACCELGATE_GRPC_ADDR=0.0.0.0:8081
EXPOSE 8080 8081
USER nonroot:nonroot
ENTRYPOINT ["/usr/local/bin/gateway"]
