PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8080

.PHONY: run test venv dev lint bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

venv: $(BIN)/python
	$(BIN)/pip install -q -e .

dev: $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'

run: venv
	$(BIN)/hver serve --host $(HOST) --port $(PORT)

test: dev
	$(BIN)/python -m pytest -n 2 --dist loadfile

lint: dev
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy

bench: dev
	$(BIN)/python bench/transfer.py

clean:
	rm -rf $(VENV) hver-data
