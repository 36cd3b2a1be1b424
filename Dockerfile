# Multi-stage build: compile in the Rust image, run from a small Debian base as a non-root user.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release -p weir-collector --bin weir \
 && strip target/release/weir

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/weir --create-home weir
COPY --from=build /src/target/release/weir /usr/local/bin/weir
COPY examples/ /etc/weir/examples/
COPY examples/default.yaml /etc/weir/weir.yaml
# Inside a container the receivers must listen beyond loopback; the data lives in a volume-friendly path.
ENV WEIR_CONFIG=/etc/weir/weir.yaml \
    WEIR_GRPC_ADDR=0.0.0.0:4317 \
    WEIR_HTTP_ADDR=0.0.0.0:4318 \
    WEIR_ADMIN_ADDR=0.0.0.0:8888 \
    WEIR_DATA_DIR=/var/lib/weir
USER weir
WORKDIR /var/lib/weir
VOLUME ["/var/lib/weir"]
EXPOSE 4317 4318 8888
ENTRYPOINT ["/usr/local/bin/weir"]
