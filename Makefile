# rt1_ros developer entry points. Everything runs from a bare Debian 12 (root) checkout:
#   make setup   apt packages (only missing ones), .venv with requirements.txt, pip install -e ., msg/srv build
#   make test    setup, then the test suite (pytest.ini: fast default run, `full` marker deselected)
#   make test-full  setup, then every test including those marked `full`
#   make demo    setup, then the end-to-end demo (python -m rt1_ros.demo; DEMO_ARGS="..." passes options)
#   make model   setup, then the recipe of the shipped policy models/rt1_sim: generate -> train, then three times
#                generate more -> fine-tune on everything so far; copy (~4 h 23 min)
#   make model-quick  the quick recipe: the same data, 800 training steps (~30 min); outputs/model/rt1_sim_quick
#   make model-dagger  a DAgger round on top of `make model`'s stage 1 (~37 min; measured, not shipped: README)
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

# The shipped policy's recipe (README "The shipped policy"). The held-out (family, target) pairs never appear as
# instructions in the data; rt1-eval reads them back from the checkpoint and reports them separately.
MODEL_DATA ?= data/rt1_sim
MODEL_RUN ?= outputs/model/rt1_sim
MODEL_EPISODES ?= 320
# Stage 2: as many new scenes again (seeds 320-639), and the stage-1 run fine-tuned on both datasets (README "What
# moved the numbers": pick 56 -> 72 %, push 42 -> 62 %).
MODEL_MORE_DATA ?= data/rt1_sim_more
MODEL_MORE_SEED_START := 320
MODEL_FINETUNE_RUN ?= outputs/model/rt1_sim_more
FINETUNE_TRAIN_SET := total_steps=2400 learning_rate=0.0003
# Stage 3: as many new scenes again (seeds 640-959), and the stage-2 run fine-tuned on all three.
MODEL_THIRD_DATA ?= data/rt1_sim_third
MODEL_THIRD_SEED_START := 640
MODEL_THIRD_RUN ?= outputs/model/rt1_sim_third
THIRD_TRAIN_SET := total_steps=3000 learning_rate=0.0003
# Stage 4: as many new scenes again (seeds 960-1279), and the stage-3 run fine-tuned on all four: the shipped weights.
MODEL_FOURTH_DATA ?= data/rt1_sim_fourth
MODEL_FOURTH_SEED_START := 960
MODEL_FOURTH_RUN ?= outputs/model/rt1_sim_fourth
FOURTH_TRAIN_SET := total_steps=3000 learning_rate=0.0003
MODEL_TRAIN_ARGS ?=
QUICK_RUN ?= outputs/model/rt1_sim_quick
QUICK_TRAIN_STEPS ?= 800
# The DAgger round (make model-dagger, README "The shipped policy"): the first run's policy drives the simulator on
# new seeds while the expert labels every state it reaches; the run is then fine-tuned on both datasets.
MODEL_DAGGER_DATA ?= data/rt1_sim_dagger
MODEL_DAGGER_RUN ?= outputs/model/rt1_sim_dagger
DAGGER_EPISODES ?= 200
DAGGER_SEED_START := 1000  # inside stage 4's seeds: the two are never trained together (DAgger starts from stage 1)
DAGGER_TRAIN_SET := total_steps=1500 learning_rate=0.0003
HELD_OUT := pick:green_cylinder push:yellow_cube move_near:red_cylinder
DAGGER_RECIPE := --families pick push move_near --workers 2 --frame-size 144 --hold-out $(HELD_OUT)
GENERATE_RECIPE := $(DAGGER_RECIPE) --arm-noise 0.01 --base-noise 0.05

.PHONY: setup test test-full demo model model-quick model-dagger lint clean distclean

setup:
	@scripts/setup.sh

test: setup
	ROS_DOMAIN_ID=$(TEST_DOMAIN_ID) $(ENV) pytest $(PYTEST_ARGS)

test-full: setup
	ROS_DOMAIN_ID=$(TEST_DOMAIN_ID) $(ENV) pytest -m "full or not full" $(PYTEST_ARGS)

demo: setup
	$(ENV) python -m rt1_ros.demo $(DEMO_ARGS)

model: setup
	$(ENV) python -m rt1_ros.data.generate --output $(MODEL_DATA) --episodes-per-family $(MODEL_EPISODES) \
		$(GENERATE_RECIPE)
	$(ENV) python -m rt1_ros.train --config config/train_sim.yaml --data $(MODEL_DATA) --output $(MODEL_RUN) \
		$(MODEL_TRAIN_ARGS)
	$(ENV) python -m rt1_ros.data.generate --output $(MODEL_MORE_DATA) --episodes-per-family $(MODEL_EPISODES) \
		--seed-start $(MODEL_MORE_SEED_START) $(GENERATE_RECIPE)
	$(ENV) python -m rt1_ros.train --config config/train_sim.yaml --data $(MODEL_DATA) --output $(MODEL_FINETUNE_RUN) \
		--set init_checkpoint=$(MODEL_RUN)/best extra_data=[$(MODEL_MORE_DATA)] $(FINETUNE_TRAIN_SET) \
		$(MODEL_TRAIN_ARGS)
	$(ENV) python -m rt1_ros.data.generate --output $(MODEL_THIRD_DATA) --episodes-per-family $(MODEL_EPISODES) \
		--seed-start $(MODEL_THIRD_SEED_START) $(GENERATE_RECIPE)
	$(ENV) python -m rt1_ros.train --config config/train_sim.yaml --data $(MODEL_DATA) --output $(MODEL_THIRD_RUN) \
		--set init_checkpoint=$(MODEL_FINETUNE_RUN)/best "extra_data=[$(MODEL_MORE_DATA),$(MODEL_THIRD_DATA)]" \
		$(THIRD_TRAIN_SET) $(MODEL_TRAIN_ARGS)
	$(ENV) python -m rt1_ros.data.generate --output $(MODEL_FOURTH_DATA) --episodes-per-family $(MODEL_EPISODES) \
		--seed-start $(MODEL_FOURTH_SEED_START) $(GENERATE_RECIPE)
	$(ENV) python -m rt1_ros.train --config config/train_sim.yaml --data $(MODEL_DATA) --output $(MODEL_FOURTH_RUN) \
		--set init_checkpoint=$(MODEL_THIRD_RUN)/best \
		"extra_data=[$(MODEL_MORE_DATA),$(MODEL_THIRD_DATA),$(MODEL_FOURTH_DATA)]" $(FOURTH_TRAIN_SET) $(MODEL_TRAIN_ARGS)
	mkdir -p models/rt1_sim
	cp $(MODEL_FOURTH_RUN)/best/model.safetensors $(MODEL_FOURTH_RUN)/best/config.yaml models/rt1_sim/

# The DAgger round measured in README "The shipped policy" (it did not beat the model it started from, so it is not
# what ships): MODEL_RUN's policy drives on new seeds while the expert labels, then a fine-tune on both datasets.
model-dagger: setup
	$(ENV) python -m rt1_ros.data.generate --output $(MODEL_DAGGER_DATA) --episodes-per-family $(DAGGER_EPISODES) \
		--seed-start $(DAGGER_SEED_START) --policy $(MODEL_RUN)/best $(DAGGER_RECIPE)
	$(ENV) python -m rt1_ros.train --config config/train_sim.yaml --data $(MODEL_DATA) --output $(MODEL_DAGGER_RUN) \
		--set init_checkpoint=$(MODEL_RUN)/best extra_data=[$(MODEL_DAGGER_DATA)] $(DAGGER_TRAIN_SET) \
		$(MODEL_TRAIN_ARGS)

# The quick recipe (README "The shipped policy"): the same generation (seeds already in MODEL_DATA are skipped),
# then a fixed 800-step schedule instead of 4,500; not copied to models/.
model-quick: setup
	$(ENV) python -m rt1_ros.data.generate --output $(MODEL_DATA) --episodes-per-family $(MODEL_EPISODES) \
		$(GENERATE_RECIPE)
	$(ENV) python -m rt1_ros.train --config config/train_sim.yaml --data $(MODEL_DATA) --output $(QUICK_RUN) \
		--set time_budget_min=0 total_steps=$(QUICK_TRAIN_STEPS) eval_every=200 $(MODEL_TRAIN_ARGS)

lint: setup
	$(ENV) ruff check .

clean:
	rm -rf build/ros

distclean: clean
	rm -rf .venv
