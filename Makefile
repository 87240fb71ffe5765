# Two commands do everything on a fresh machine:
#   make demo   installs into .venv and runs both jobs end to end on built-in sample data
#   make test   installs into .venv and runs every test suite
PYTHON ?= $(shell command -v python3.11 || echo python3)
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO_OUTPUT ?= demo-output
PYTEST_ARGS ?=
APT := $(if $(filter 0,$(shell id -u)),,sudo) apt-get

# Local runs never talk to Google: a pre-authorized fake credential loads instantly
# (no 23 s google.auth.default() wait) and no metadata-server probe is made.
export GOOGLE_APPLICATION_CREDENTIALS := $(CURDIR)/samples/local_credentials.json
export NO_GCE_CHECK := true
export GOOGLE_CLOUD_PROJECT ?= local-project
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: install browser demo demo-cloud test bench clean

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-test.txt requirements-nodeps.txt setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip wheel 'setuptools<82'
	$(PY) -m pip install -q $$(grep '^torch==' requirements.txt)
	$(PY) -m pip install -q -e '.[test]'
	$(PY) -m pip install -q --no-deps -r requirements-nodeps.txt
	$(PY) -c "from duckdb_extensions import import_extension as i; i('spatial'); i('avro')"
	touch $@

demo: install
	$(PY) -m samples.demo --output $(DEMO_OUTPUT)

demo-cloud: install
	$(PY) -m samples.demo --output $(DEMO_OUTPUT) --jobs cloud

# The report's browser test opens report.html in Debian's chromium.
browser:
	@command -v chromium >/dev/null || { $(APT) update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(APT) install -y -qq chromium; }

test: install browser
	bash tests/hermetic.sh $(PY) -m pytest $(PYTEST_ARGS)

bench: install
	$(PY) benchmarks/site_predictions.py

clean:
	rm -rf $(VENV) $(DEMO_OUTPUT) .pytest_cache *.egg-info
