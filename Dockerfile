# syntax=docker/dockerfile:1
#
# Parley container image.
#   docker build -t parley .
#   docker run -p 3000:3000 parley                  (SQLite in /app, default config)
#   docker compose up                                (with PostgreSQL, see docker-compose.yml)
#
# Templates and migrations are compiled into the binary; static files are served
# from ./static relative to the working directory (/app/static).

# ---------------------------------------------------------------- build
FROM rust:1-bookworm AS builder
WORKDIR /build

COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY templates ./templates
COPY static ./static
COPY migrations ./migrations
# Declared in Cargo.toml: cargo wants the file present even when building only the binary.
COPY benches ./benches

RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/build/target \
    cargo build --release --locked --bin parley \
 && install -m 0755 target/release/parley /usr/local/bin/parley

# ---------------------------------------------------------------- runtime
FROM debian:bookworm-slim

RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 parley \
 && useradd --system --uid 10001 --gid parley --home-dir /app --shell /usr/sbin/nologin parley \
 && mkdir -p /app /data/files \
 && chown parley:parley /app /data/files

COPY --from=builder /usr/local/bin/parley /usr/local/bin/parley
COPY static /app/static

WORKDIR /app
USER 10001:10001

ENV PARLEY_ADDR=0.0.0.0:3000
EXPOSE 3000

CMD ["parley", "serve"]
