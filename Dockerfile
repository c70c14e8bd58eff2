# OfferHub daemon image: `offerhub serve` (API, workers, chain monitor) and the operator
# commands (`docker compose exec offerhub offerhub reconcile`, `… ledger verify`, …).
#
#   docker build -t offerhub:latest .
#   docker compose -f deploy/compose.yml up -d        # PostgreSQL + one daemon
#
# Configuration comes from the environment (README "Configuration"); the data directory
# (/var/lib/offerhub: SQLite file when no DATABASE_URL, generated sandbox secrets and
# sandbox state) is a volume. The image runs as an unprivileged user.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p offerhub-cli \
 && install -m 0755 target/release/offerhub /usr/local/bin/offerhub

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home-dir /var/lib/offerhub --create-home --uid 10001 offerhub
COPY --from=build /usr/local/bin/offerhub /usr/local/bin/offerhub
USER offerhub
WORKDIR /var/lib/offerhub
ENV HOST=0.0.0.0 \
    PORT=4000 \
    OFFERHUB_DATA_DIR=/var/lib/offerhub/data \
    OFFERHUB_LOG_FORMAT=json
VOLUME ["/var/lib/offerhub/data"]
EXPOSE 4000
HEALTHCHECK --interval=10s --timeout=3s --retries=5 \
  CMD curl -fsS "http://127.0.0.1:${PORT}/api/v1/health" || exit 1
# SIGTERM: workers stop and the API drains within 5 s.
STOPSIGNAL SIGTERM
ENTRYPOINT ["offerhub"]
CMD ["serve"]
