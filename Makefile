# The two commands of the README. Each creates .venv and installs numpynn into it on first use.
#   make run    train the seed's network on MNIST and print its accuracy   (ARGS="--alpha 0.1" to pass flags)
#   make test   run the test suite                                       (PYTEST_ARGS="-k data" to select)
#   make serve  open the web page on http://127.0.0.1:8000/                 (ARGS="model.npz" to pass flags)
#   make notebooks  open notebooks/ in JupyterLab, installing JupyterLab into .venv on first use (ARGS="--no-browser")
#   make builtin-model  train the built-in model again and write numpynn/models/cnn-affine.npz (docs/builtin-model.md)
PYTHON ?= python3
VENV := .venv
# The MNIST files: $NUMPYNN_DATA if set, else ../shared/mnist beside this checkout if it is there.
ifeq ($(NUMPYNN_DATA),)
ifneq ($(wildcard ../shared/mnist),)
export NUMPYNN_DATA := $(abspath ../shared/mnist)
endif
endif

.PHONY: run test serve notebooks builtin-model readme-screenshot clean
run: $(VENV)/.installed
	$(VENV)/bin/numpynn seed $(ARGS)

serve: $(VENV)/.installed
	$(VENV)/bin/numpynn serve $(ARGS)

test: $(VENV)/.installed
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

# The README's picture of the page (docs/img/page-draw.png), taken by the browser test; a plain `make test`
# leaves it as committed.
readme-screenshot: $(VENV)/.installed
	NUMPYNN_README_SCREENSHOT=1 $(VENV)/bin/python -m pytest tests/test_browser.py -k newcomer

# JupyterLab refuses to start as root unless told; root is usual in a container, so tell it there.
notebooks: $(VENV)/.notebooks
	$(VENV)/bin/jupyter lab notebooks/ $(if $(filter 0,$(shell id -u)),--allow-root) $(ARGS)

# The training run is kept in runs/builtin/ (model, metrics, checkpoint); the second step casts its weights to
# float32, measures them on the dev and test sets again and writes the package's file with its SHA-256.
builtin-model: $(VENV)/.installed
	mkdir -p runs/builtin
	$(VENV)/bin/numpynn train --preset cnn --augment affine --out runs/builtin/cnn-affine.npz
	$(VENV)/bin/python -m numpynn.models runs/builtin/cnn-affine.npz --out numpynn/models/cnn-affine.npz

$(VENV)/.notebooks: $(VENV)/.installed
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test,notebooks]'
	touch $@

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
