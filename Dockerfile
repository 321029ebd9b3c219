# One image for every groupsync role (serve, worker, emulator, jobs, reconcile).
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /out/groupsync ./cmd/groupsync

FROM alpine:3.20
RUN adduser -D -u 10001 groupsync
COPY --from=build /out/groupsync /usr/local/bin/groupsync
USER groupsync
ENTRYPOINT ["groupsync"]
CMD ["serve"]
