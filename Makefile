# Two commands a new user needs (see README):
#   make run    install into .venv and start the gateway on 127.0.0.1:8080
#   make test   install the test dependencies into .venv and run the whole suite
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin

.PHONY: run test soak lint install install-test bench bench-gateway bench-streams clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

install: $(BIN)/python
	$(BIN)/python -m pip install -q -e .

install-test: $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[dev]'

# HOST=0.0.0.0 PORT=9090 make run: another address (GATEWAY_HOST / GATEWAY_PORT work too).
run: install
	$(BIN)/gateway serve $(if $(HOST),--host $(HOST)) $(if $(PORT),--port $(PORT))

test: install-test
	$(BIN)/ruff check gateway tests bench
	$(BIN)/mypy
	$(BIN)/python -m pytest

# The mixed soak (not in `make test`): SOAK_DURATION_S seconds of mixed traffic against a
# real gateway; flat RSS and descriptors, every request counted in gateway_requests_total.
SOAK_DURATION_S ?= 180
soak: install-test
	SOAK_DURATION_S=$(SOAK_DURATION_S) $(BIN)/python -m pytest -s -p no:cacheprovider --override-ini addopts= -o timeout=0 tests/soak

# Micro benchmarks, then the load comparison: direct, floor, gateway, LiteLLM, Portkey
# (peers installed into /tmp/gateway-bench-peers on first use). Under 5 minutes.
bench: install-test
	$(BIN)/python -m bench.micro
	$(BIN)/python -m bench.load --duration 2 --peers litellm,portkey

# The same without the peers (~2 min).
bench-gateway: install-test
	$(BIN)/python -m bench.micro
	$(BIN)/python -m bench.load --duration 3

# CPU per relayed stream event (direct, the TCP-pipe floor, the gateway) and concurrent
# paced streams per core (~6 min).
bench-streams: install-test
	$(BIN)/python -m bench.streams cost --streams 200 --chunks 20,100 --itl-ms 20 --runs 3
	$(BIN)/python -m bench.streams capacity --levels 250,500,750,1000,1500,2000

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
