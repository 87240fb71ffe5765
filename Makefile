# Two commands do everything on a fresh machine:
#   make demo   installs into .venv and runs both jobs end to end on built-in sample data
#   make test   installs into .venv and runs every test suite
#   make trigger-demo   a trigger file upload launches the per-site job through the
#                       real functions framework and a local GCS server
PYTHON ?= $(shell command -v python3.11 || echo python3)
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO_OUTPUT ?= demo-output
PYTEST_ARGS ?=
# torch's CPU build (stock PyPI's Linux wheel pulls multi-GB CUDA libraries);
# where that index cannot be reached, whatever the configured index serves.
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
APT := $(if $(filter 0,$(shell id -u)),,sudo) apt-get

# Local runs never talk to Google: a pre-authorized fake credential loads instantly
# (no 23 s google.auth.default() wait) and no metadata-server probe is made.
export GOOGLE_APPLICATION_CREDENTIALS := $(CURDIR)/samples/local_credentials.json
export NO_GCE_CHECK := true
export GOOGLE_CLOUD_PROJECT ?= local-project
export TF_CPP_MIN_LOG_LEVEL ?= 3

FORMATTED := beam_jobs transforms models common functions templates tests benchmarks setup.py

.PHONY: install browser demo demo-cloud trigger-demo test bench format clean check-python

install: $(VENV)/.installed

check-python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null || { \
	  echo "error: Python 3.11 is required (Beam 2.77, TF 2.21 and tfx-bsl 1.21 are pinned for it);" \
	       "found '$(PYTHON)' = $$($(PYTHON) --version 2>&1). Install python3.11 or run make PYTHON=/path/to/python3.11" >&2; \
	  exit 1; }

$(VENV)/.installed: requirements.txt requirements-test.txt requirements-nodeps.txt setup.py | check-python
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip wheel 'setuptools<82'
	$(PY) -m pip install -q --retries 0 --timeout 20 --index-url $(TORCH_CPU_INDEX) \
	    $$(grep '^torch==' requirements.txt) 2>/dev/null \
	  || $(PY) -m pip install -q $$(grep '^torch==' requirements.txt)
	$(PY) -m pip install -q -e '.[detect,test]'
	$(PY) -m pip install -q --no-deps -r requirements-nodeps.txt
	$(PY) -c "from duckdb_extensions import import_extension as i; i('spatial'); i('avro')"
	touch $@

demo: install
	$(PY) -m samples.demo --output $(DEMO_OUTPUT)

demo-cloud: install
	$(PY) -m samples.demo --output $(DEMO_OUTPUT) --jobs cloud

trigger-demo: install
	$(PY) -m samples.trigger_demo --output $(DEMO_OUTPUT)

# The report's browser test opens report.html in Debian's chromium.
browser:
	@command -v chromium >/dev/null || { $(APT) update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(APT) install -y -qq chromium; }

test: install browser
	bash tests/hermetic.sh $(PY) -m pytest $(PYTEST_ARGS)

bench: install
	$(PY) benchmarks/site_predictions.py

# Format the tree in place (yapf, configured in pyproject.toml); `make test` checks it.
format: install
	$(PY) -m yapf -i -r $(FORMATTED)

clean:
	rm -rf $(VENV) $(DEMO_OUTPUT) .pytest_cache *.egg-info
