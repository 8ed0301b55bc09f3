# Developer entry points. `test` runs every target, the differential
# conformance suite against the reference included (it needs
# /usr/bin/prometheus-pushgateway: apt-get install -y prometheus-pushgateway).

.PHONY: build deps test conformance bench lint run

build:
	cargo build --release

# The reference gateway the differential tests and the benchmark run against.
deps:
	@command -v prometheus-pushgateway >/dev/null 2>&1 || \
		{ apt-get update -qq && apt-get install -y -qq prometheus-pushgateway >/dev/null; }

test: deps
	cargo test --all-targets

conformance: deps
	cargo test --test conformance

# BENCH_SCALE=0.1 for a quick run; PUSHGATEWAY_BIN to bench another binary.
bench: deps
	cargo build --release
	cargo bench --bench gateway

lint:
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings

# make run ARGS="--web.listen-address=127.0.0.1:9091 --persistence.file="
run:
	cargo run --release -- $(ARGS)
