# Set-up and everyday commands. Each target creates the virtualenv it needs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
ADDRESS ?= 127.0.0.1:9877

.PHONY: demo test install-test-deps lint

$(BIN)/dify-license-exporter: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

# Serve the bundled example (no cluster needed) on $(ADDRESS).
demo: $(BIN)/dify-license-exporter
	mkdir -p build
	$(BIN)/python examples/generate_registry.py --output build/example-registry.yaml
	@echo "Serving the example on http://$(ADDRESS)/metrics (Ctrl-C stops it)"
	$(BIN)/dify-license-exporter serve --registry build/example-registry.yaml \
		--values-dir examples/values --web.listen-address $(ADDRESS) \
		--refresh-interval 15

# Debian packages the tests run for real: promtool, Prometheus, Alertmanager.
install-test-deps:
	sh scripts/install-test-deps.sh

# Install everything the tests need, then run the whole suite.
test: install-test-deps $(BIN)/dify-license-exporter
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(BIN)/dify-license-exporter
	$(BIN)/ruff check exporter tests
