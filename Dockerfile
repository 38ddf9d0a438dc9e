# go-websocket: multi-stage build of a static binary, run as a non-root user.
#   docker build -t go-websocket .
#   docker run -p 7800:7800 go-websocket
FROM golang:1.27.3-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=docker
RUN CGO_ENABLED=0 GOFLAGS=-buildvcs=false go build -trimpath \
      -ldflags "-s -w -X main.version=${VERSION}" -o /out/go-websocket . \
 && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
WORKDIR /app
COPY --from=build /out/go-websocket /app/go-websocket
COPY conf.ini /app/conf.ini
COPY --from=build --chown=65532:65532 /out/data /app/data
# State (registered systems, the generated clientId secret) lives here;
# mount a volume to keep it across container restarts.
ENV GOWS_SERVER_DATADIR=/app/data \
    GOWS_LOG_FORMAT=json
VOLUME ["/app/data"]
USER nonroot:nonroot
EXPOSE 7800 7900
STOPSIGNAL SIGTERM
ENTRYPOINT ["/app/go-websocket", "-c", "/app/conf.ini"]
