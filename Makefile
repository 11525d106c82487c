# The verbs a user types. Each target creates the virtualenv and installs the pinned
# requirements on first use, so every one of them works on its own from a fresh clone.

PYTHON ?= python3
VENV := venv
PY := $(VENV)/bin/python

.PHONY: test unit lint

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

## test: the whole test suite (what CI runs)
test: $(VENV)/.installed
	$(PY) -m pytest

## unit: the fast tier only (mocks, no server)
unit: $(VENV)/.installed
	$(PY) -m pytest tests/unit

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .

# --- the dev stack: the program for real, on a local OpenBao dev server and a stand-in Nomad
# issuer (state in .dev/ and .state/, both git-ignored). See devtools/dev_stack.py.

JOB ?= web
NAMESPACE ?= default
# 1: the OpenBao dev server; 3: a three-node OpenBao Raft cluster (production's shape).
NODES ?= 1
DEV_STACK := $(PY) -m devtools.dev_stack

# Each verb drives the Pulumi CLI through devtools/workspace.py, which says how to get the CLI
# when it is not on PATH.
.PHONY: up preview destroy down try outputs

## up: start/reuse the dev servers (NODES=3: a Raft cluster), pulumi up --refresh, print the Nomad config
up: $(VENV)/.installed
	$(DEV_STACK) up --nodes $(NODES)

## preview: pulumi preview --refresh the dev stack
preview: $(VENV)/.installed
	$(DEV_STACK) preview --nodes $(NODES)

## destroy: pulumi destroy the dev stack's Vault objects; the dev servers keep running
destroy: $(VENV)/.installed
	$(DEV_STACK) destroy --nodes $(NODES)

## down: destroy, then stop the dev servers
down: $(VENV)/.installed
	$(DEV_STACK) down --nodes $(NODES)

## try: log in as Nomad job JOB in NAMESPACE, read its secret, be denied another's
try: $(VENV)/.installed
	$(DEV_STACK) try --nodes $(NODES) --job '$(JOB)' --namespace '$(NAMESPACE)'

## outputs: the dev stack's outputs as JSON
outputs: $(VENV)/.installed
	$(DEV_STACK) outputs

## bench: time up/preview/destroy through the Pulumi CLI vs raw HTTP, count Vault requests,
## time 1, 10 and 50 clusters through the CLI with checkpoints on and off, and the program's
## evaluation under mocks for 1, 10 and 50 clusters (~5 min)
.PHONY: bench
bench: $(VENV)/.installed
	$(PY) -m bench.bench $(ARGS)
	$(PY) -m bench.evaluation
	$(PY) -m bench.access_audit

## promote: move the current commit from stack FROM to stack TO after the checks
## (clean tree, FROM updated from HEAD, no drift, nothing breaking in TO's preview, no job
## reading another's secrets in TO's access audit); pass flags with ARGS="--dry-run",
## "--allow-replace", "--jobs staging-jobs.json" or "--allow-risky-jobs"
FROM ?= dev
TO ?= staging
.PHONY: promote
promote: $(VENV)/.installed
	$(PY) -m devtools.promote --from '$(FROM)' --to '$(TO)' $(ARGS)

## audit: which secrets each Nomad job can read under stack STACK (jobs from JOBS=jobs.json, a
## JSON list of {namespace, id, region?}, else from NOMAD_ADDR/NOMAD_TOKEN); exits 1 on a
## high-severity finding; ARGS="--who-can-read secret/data/prod/db" or "--format json|mermaid"
STACK ?= dev
JOBS ?=
.PHONY: audit
audit: $(VENV)/.installed
	$(PY) -m devtools.audit --stack '$(STACK)' $(if $(JOBS),--jobs '$(JOBS)') $(ARGS)

## docs: regenerate README.md's inputs and outputs tables from Pulumi.yaml and nomad_vault_setup/outputs.py
.PHONY: docs
docs: $(VENV)/.installed
	$(PY) -m devtools.readme_tables --write
