# Boomerang: the two commands that matter are `make run` and `make test` (see README.md).

VENV := .venv
PYTHON := $(VENV)/bin/python

.PHONY: run test bench lint docker-test

## run: install what is missing, then start the whole platform (Ctrl-C stops it)
run:
	@scripts/bootstrap.sh run
	$(VENV)/bin/boomerang run

## test: install what is missing (MariaDB included), then run the whole test suite
test:
	@scripts/bootstrap.sh test
	@url=$$(scripts/ensure-mariadb.sh) && TEST_MARIADB_URL="$$url" $(VENV)/bin/pytest $(PYTEST_ARGS)
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/ruff format --check .

## lint: style checks only
lint:
	@scripts/bootstrap.sh test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

## bench: measure the platform's figures beside their baselines (see docs/benchmarks.md)
bench:
	@scripts/bootstrap.sh test
	@url=$$(scripts/ensure-mariadb.sh) && TEST_MARIADB_URL="$$url" $(PYTHON) -m benchmarks.run $(BENCH)

## docker-test: build the container images, run docker/compose.yaml with podman and check it (slow)
docker-test:
	@scripts/docker-test.sh
