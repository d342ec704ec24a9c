# Two commands do everything on a fresh machine: `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PY_STAMP := $(VENV)/.installed
JS_STAMP := calendar/node_modules/.installed
MO_FILES := $(patsubst %.po,%.mo,$(wildcard publisher/translations/*/LC_MESSAGES/messages.po))

.PHONY: install run test lint translations-update clean

install: $(PY_STAMP) $(JS_STAMP) $(MO_FILES)

$(PY_STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

$(JS_STAMP): calendar/package.json calendar/package-lock.json
	cd calendar && npm ci --no-audit --no-fund --loglevel=error
	touch $@

%.mo: %.po $(PY_STAMP)
	$(BIN)/pybabel compile -i $< -o $@

run: install
	$(BIN)/publisher db upgrade
	$(BIN)/publisher demo
	$(BIN)/publisher up

test: install
	$(BIN)/ruff check .
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check .

# Re-extract the messages after changing user-facing strings, then translate the new ones.
translations-update: $(PY_STAMP)
	$(BIN)/pybabel extract -F babel.cfg -k _l -k lazy_gettext --ignore-dirs=".venv node_modules instance" -o publisher/translations/messages.pot .
	$(BIN)/pybabel update --no-fuzzy-matching -i publisher/translations/messages.pot -d publisher/translations

clean:
	rm -rf $(VENV) calendar/node_modules
