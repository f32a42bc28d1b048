# Everything runs from the project's own venv (.venv) and node_modules; `make run` and
# `make test` create them on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
BUF := node_modules/.bin/buf
PROTOS := $(wildcard protos/langgraph/gateway/v1/*.proto)
TS_CLIENT := clients/typescript
WEB := examples/web

.PHONY: install run test test-fast check lint format typecheck proto proto-check proto-lint proto-breaking client-ts web-test bench bench-smoke clean

install: $(VENV)/.installed $(VENV)/.client node_modules/.installed

# The server depends on clients/python (the stubs and the light client), which is not on PyPI:
# it goes in first. `make proto` puts it in again with the new stubs.
$(VENV)/.installed: pyproject.toml clients/python/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet ./clients/python
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $@

# The client is installed as a wheel (the stubs are forced into it), not editable: put in again
# whenever its sources or the stubs change.
CLIENT_SOURCES := $(shell find clients/python/langgraph generated/langgraph -name '*.py' -o -name '*.pyi' 2>/dev/null)
$(VENV)/.client: $(VENV)/.installed $(CLIENT_SOURCES)
	$(PY) -m pip install --quiet --no-deps --force-reinstall ./clients/python
	@touch $@

node_modules/.installed: package.json
	npm install --no-audit --no-fund --loglevel=error
	@touch $@

# `make run HTTP_PORT=8123` when 2024 is taken (`langgraph dev` uses it too); 0 picks a free port.
GRPC_PORT ?= 50051
HTTP_PORT ?= 2024

run: install
	$(PY) -m gateway serve --config examples/langgraph.json --db gateway.sqlite --grpc-port $(GRPC_PORT) --http-port $(HTTP_PORT)

# The suite in parallel (pytest-xdist): its tests mostly wait on the servers they start, so 4
# workers on 2 cores keep the CPU busy (the whole suite in 4:56 here; 7:06 at 2). Each worker's
# gateways hold Postgres connections: 4 peaked at 74 of Postgres' default 100, 6 at 95.
# PYTEST_WORKERS=0 runs it in one process.
PYTEST_WORKERS ?= 4
PYTEST_FAST_WORKERS ?= 4
PYTEST_ARGS ?=

test: install $(TS_CLIENT)/node_modules/.installed
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

# The tiers that start no process (unit, edge), in well under a minute: docs/testing.md.
test-fast: install
	$(PY) -m pytest -m "unit or edge" -n $(PYTEST_FAST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check gateway tests bench examples clients/python
	$(VENV)/bin/ruff format --check gateway tests bench examples clients/python
	$(VENV)/bin/lint-imports
	$(MAKE) proto-lint

format: install
	$(VENV)/bin/ruff format gateway tests bench examples clients/python
	$(VENV)/bin/ruff check --fix gateway tests bench examples clients/python
	$(BUF) format -w

typecheck: install
	$(VENV)/bin/mypy
	cd clients/python && ../../$(VENV)/bin/mypy

$(TS_CLIENT)/node_modules/.installed: $(TS_CLIENT)/package.json $(TS_CLIENT)/package-lock.json
	cd $(TS_CLIENT) && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

proto: install $(TS_CLIENT)/node_modules/.installed
	cd $(TS_CLIENT) && npm run --silent generate
	rm -rf generated/langgraph
	mkdir -p generated
	$(PY) -m grpc_tools.protoc -I protos --python_out=generated --pyi_out=generated --grpc_python_out=generated $(PROTOS)
	$(PY) -m pip install --quiet --no-deps --force-reinstall ./clients/python

# generated/ is committed; this fails when it no longer matches protos/.
proto-check: install $(TS_CLIENT)/node_modules/.installed
	rm -rf build/proto-check && mkdir -p build/proto-check
	$(PY) -m grpc_tools.protoc -I protos --python_out=build/proto-check --pyi_out=build/proto-check --grpc_python_out=build/proto-check $(PROTOS)
	diff -r build/proto-check/langgraph generated/langgraph || (echo "generated/ is stale: run make proto" && exit 1)
	cd $(TS_CLIENT) && npm run --silent generate
	@git diff --quiet -- $(TS_CLIENT)/src/gen && test -z "$$(git ls-files --others --exclude-standard -- $(TS_CLIENT)/src/gen)" \
		|| (echo "$(TS_CLIENT)/src/gen is stale: run make proto" && exit 1)

proto-lint: node_modules/.installed
	$(BUF) lint
	$(BUF) format -d --exit-code

# protos/baseline/v1.binpb is the v1 API as released (`buf build --exclude-source-info -o ...`):
# any change that breaks a v1 client fails here, whatever the branch or clone. Adding
# fields, messages and RPCs passes; the baseline is replaced only by a new major version.
proto-breaking: node_modules/.installed
	$(BUF) breaking --against protos/baseline/v1.binpb

# The TypeScript client's own tests, against a real gateway over gRPC, Connect and gRPC-Web.
client-ts: install $(TS_CLIENT)/node_modules/.installed
	cd $(TS_CLIENT) && npm test

# examples/web in real headless Chromium (Debian's package, installed here when missing).
$(WEB)/node_modules/.installed: $(WEB)/package.json $(WEB)/package-lock.json
	cd $(WEB) && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

/usr/bin/chromium:
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium

web-test: install $(TS_CLIENT)/node_modules/.installed $(WEB)/node_modules/.installed /usr/bin/chromium
	cd $(WEB) && npm test

check: lint proto-check proto-breaking typecheck test client-ts web-test

bench: install
	$(PY) -m bench

bench-smoke: install
	$(PY) -m bench --smoke

clean:
	rm -rf build .pytest_cache .mypy_cache .ruff_cache gateway.sqlite*
