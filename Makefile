# The two commands a newcomer needs: `make run` and `make test`. Everything else is for maintainers.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PY        := .venv/bin/python
RASA_PY   := .rasa-venv/bin/python
CACHE     ?= $(HOME)/.cache/citizen-assistant
RASA_ENV  := PYTHONPATH=$(CURDIR) TF_CPP_MIN_LOG_LEVEL=2 SQLALCHEMY_SILENCE_UBER_WARNING=1 RASA_TELEMETRY_ENABLED=false
SRC       := actions bot broadcast console core kernel nlu portal reminders sandbox store tools tests benchmarks
# Test worker processes (pytest-xdist), each with its own Rasa server (≈0.7 GB), emulators and databases; a test
# file stays on one worker, so module fixtures start once. Most of a test's time is spent waiting on sockets.
WORKERS   ?= 6
XDIST     := -n $(WORKERS) --dist loadfile

.PHONY: help env model run test test-fast lint typecheck pytest test-long bench \
        nlu-train nlu-test nlu-score nlu-validate nlu-parse nlu-review nlu-reload audit ask

help:
	@echo "make run      start the assistant (local sandbox without TELEGRAM_BOT_TOKEN, real Telegram with it)"
	@echo "make test     set up what is missing, then lint, type-check and run the whole test suite"
	@echo "make test-fast  lint and the unit tests (tests/unit: no Rasa, no bot, SQLite only; about 75 s)"
	@echo "make bench    run the benchmarks (figures in benchmarks/results.json, docs/benchmarks.md)"
	@echo "make nlu-train | nlu-test | nlu-score | nlu-validate | nlu-parse | nlu-review | nlu-reload   (maintainers)"

# Environments: cached outside the repo, keyed by the lock files' hash; a no-op when nothing changed.
env:
	@python3 tools/envs.py bot
	@python3 tools/envs.py rasa

# The NLU model: retrained only when data/nlu, config.yml, domain.yml or nlu/components change.
model nlu-train: env
	@$(RASA_ENV) $(RASA_PY) nlu/tools/train.py --cache-dir $(CACHE)/models

run: env model
	@$(PY) -m tools.run

test: env model lint typecheck pytest

lint: env
	@echo "[test] ruff"
	@$(PY) -m ruff check $(SRC)
	@$(PY) -m ruff format --check $(SRC)
	@echo "[test] import contracts (pyproject.toml [tool.importlinter])"
	@.venv/bin/lint-imports --no-cache | grep -E "KEPT|BROKEN|^- |Contracts:"; exit $${PIPESTATUS[0]}

typecheck: env
	@echo "[test] mypy"
	@$(PY) -m mypy $(SRC)

pytest: env model nlu-validate
	@echo "[test] pytest (SQLite$${TEST_DATABASE_URL:+ and PostgreSQL}, $(WORKERS) workers)"
	@$(PY) -m pytest -q -rs -p no:cacheprovider $(XDIST)

# While working: tests/unit only (no Rasa server, no bot, no model needed), SQLite only (the PostgreSQL variants
# skip with their reason).
test-fast: env lint
	@echo "[test] unit tests (tests/unit), SQLite only, $(WORKERS) workers"
	@TEST_DATABASE_URL= $(PY) -m pytest -q -rs -p no:cacheprovider $(XDIST) tests/unit

test-long: env model
	@$(PY) -m pytest -q -s -p no:cacheprovider -m slow --run-slow tests/e2e/soak  # -s: print the figures

nlu-validate: env
	@$(RASA_ENV) .rasa-venv/bin/rasa data validate --data data/nlu --domain domain.yml --fail-on-warnings

nlu-test: env model
	@$(RASA_ENV) $(RASA_PY) nlu/tools/evaluate.py --latency --confusion var/nlu/confusion.png \
		--field-confusion var/nlu/field-confusion.png --baseline nlu/tools/pipelines/a_diet_stock.yml \
		--cache-dir $(CACHE)/models

# Held-out and field figures of one model (MODEL=models/nlu-<hash>.tar.gz, default the current one) in ~30 s,
# recorded beside it for the console's models page and the hot-swap guard; `nlu-test` measures everything.
nlu-score: env model
	@$(RASA_ENV) $(RASA_PY) nlu/tools/evaluate.py --quick --json var/nlu/score.json $(if $(MODEL),--model $(MODEL))

nlu-parse: env model
	@$(RASA_ENV) $(RASA_PY) nlu/tools/parse.py $(ARGS)

nlu-review: env
	@$(RASA_ENV) $(RASA_PY) nlu/tools/review.py

nlu-reload: env model
	@$(RASA_ENV) $(RASA_PY) nlu/tools/reload.py

# What the bot answers: questions on stdin (one a line) or Q="…", each from a new citizen; LANG_CODE=en for English.
ask: env model
	@if [ -n "$(Q)" ]; then $(PY) -m tools.ask --lang $(or $(LANG_CODE),vi) "$(Q)"; \
	else $(PY) -m tools.ask --lang $(or $(LANG_CODE),vi); fi

bench: env model
	@$(PY) -m benchmarks.run

bench-%: env model
	@$(PY) -m benchmarks.run $*

# pip-audit over both lock sets; says why and exits 0 where no vulnerability database is reachable.
audit: env
	@$(PY) tools/audit.py
