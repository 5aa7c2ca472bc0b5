# rt1_ros developer entry points. Everything runs from a bare Debian 12 (root) checkout:
#   make setup   apt packages (only missing ones), .venv with requirements.txt, pip install -e ., msg/srv build
#   make test    setup, then the test suite (pytest.ini: fast default run, `full` marker deselected)
#   make test-full  setup, then every test including those marked `full`
#   make demo    setup, then the end-to-end demo (python -m rt1_ros.closed_loop.demo; DEMO_ARGS="..." passes options)
#   make model   setup, then the recipe of the shipped policy models/rt1_sim (config/recipe_sim.yaml): generate
#                demonstrations, train, copy the best weights to models/rt1_sim
#   make lint    setup, then ruff (ruff.toml)
#   make clean   remove the interface build (build/ros); distclean also removes .venv
# Set-up steps are keyed on hashes of their inputs, so reruns take about a second.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := test

ENV := scripts/rt1-env
PYTEST_ARGS ?=
DEMO_ARGS ?=
# Each test run gets its own DDS domain unless ROS_DOMAIN_ID is set, so two checkouts (or two engineers) testing
# on one machine at the same time do not see each other's topics.
TEST_DOMAIN_ID := $(or $(ROS_DOMAIN_ID),$(shell echo $$(( RANDOM % 100 + 1 ))))

# The shipped policy's recipe (docs/training.md): one generation and one training run, every option and seed in
# config/recipe_sim.yaml.
RECIPE ?= config/recipe_sim.yaml
RECIPE_ARGS ?=

.PHONY: setup test test-full demo model lint clean distclean

setup:
	@scripts/setup.sh

test: setup
	ROS_DOMAIN_ID=$(TEST_DOMAIN_ID) $(ENV) pytest $(PYTEST_ARGS)

test-full: setup
	ROS_DOMAIN_ID=$(TEST_DOMAIN_ID) $(ENV) pytest -m "full or not full" $(PYTEST_ARGS)

demo: setup
	$(ENV) python -m rt1_ros.closed_loop.demo $(DEMO_ARGS)

model: setup
	$(ENV) python -m rt1_ros.training.recipe --config $(RECIPE) $(RECIPE_ARGS)

lint: setup
	$(ENV) ruff check .

clean:
	rm -rf build/ros

distclean: clean
	rm -rf .venv
