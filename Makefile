# Loom. `make sim MODEL=gpt2` and `make test` work on a fresh clone with Python 3.11,
# a C++ compiler and make: the first call creates .venv and installs the project.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

MODEL ?= gpt2
BACKEND ?= verilator
TOKENS ?= 8
SEED ?= 0
LAYERS ?=
WEIGHTS ?=
HW ?=
# Debugging (RTL): WAVES=1 records build/<model>/waves.fst (window: LAYER=module.path,
# CYCLES=a:b or INSN=i:j); TRACE=1 writes an instruction log; FAULT=name injects a fault.
WAVES ?=
LAYER ?=
CYCLES ?=
INSN ?=
TRACE ?=
FAULT ?=
# BACKEND=torch: DEVICE=cpu|cuda; BATCH=n for throughput workloads (GPT-2, mlp).
DEVICE ?=
BATCH ?=
# make fuzz: N random programs from seed SEED on the RTL (HW=config; FAULT=name injects
# an RTL bug to see it found).
N ?= 2000

.PHONY: sim waves test test-full lint format gen bench bench-torch bench-tolerances fuzz coverage bench-verif mutate regress models train-tiny clean

# Reinstalled only when pyproject.toml changes.
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]' --config-settings editable_mode=compat
	@touch $(STAMP)

sim: $(STAMP)
	$(PY) -m sim $(MODEL) --backend $(BACKEND) --tokens $(TOKENS) --seed $(SEED) \
		$(if $(LAYERS),--layers $(LAYERS)) $(if $(WEIGHTS),--weights $(WEIGHTS)) \
		$(if $(HW),--hw $(HW)) $(if $(WAVES),--waves) $(if $(LAYER),--wave-layer $(LAYER)) \
		$(if $(CYCLES),--wave-cycles $(CYCLES)) $(if $(INSN),--wave-insns $(INSN)) \
		$(if $(TRACE),--trace) $(if $(FAULT),--fault $(FAULT)) \
		$(if $(DEVICE),--device $(DEVICE)) $(if $(BATCH),--batch $(BATCH))

# Open the newest build/*/waves.fst (or WAVES_FILE=path) with its generated view.
waves: $(STAMP)
	$(PY) -m sim.rtl.waves $(WAVES_FILE)

test: $(STAMP)
	$(PY) -m pytest -q -m "not slow and not gpu"

test-full: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m contract.gen --check
	$(PY) -m sim.rtl.build

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# Regenerate rtl/loom_pkg.sv, the tables in docs/isa.md and the lockstep checker's C++
# header from the contract (contract/isa.py, csr.py, lockstep.py, hw.py).
gen: $(STAMP)
	$(PY) -m contract.gen

bench: $(STAMP)
	$(PY) bench/run.py

# GPT-2 small on the torch backend vs PyTorch eager and torch.compile (CPU, and CUDA when
# present): bench/torch_results.md.
bench-torch: $(STAMP)
	$(PY) bench/torch_bench.py

# The error distributions the golden tolerances are derived from, over a model suite on
# the ISA model: bench/tolerances.md (docs/golden.md).
bench-tolerances: $(STAMP)
	$(PY) bench/tolerances.py

# Constrained-random programs on the RTL in lockstep with the ISA model (verif/): a
# failure is shrunk, saved under build/fuzz/ and printed with its rerun command.
fuzz: $(STAMP)
	$(PY) -m verif fuzz --seed $(SEED) -n $(N) $(if $(HW),--hw $(HW)) $(if $(FAULT),--fault $(FAULT))

# Coverage of `make test` plus `make fuzz N=$(N)`, both measured in one run: functional
# coverage of every program the ISA model runs (verif/coverage.py: percentage per group,
# holes) and code coverage of rtl/ from Verilator coverage builds (verif/rtl_coverage.py:
# line, branch and toggle per module, uncovered lines, waivers in rtl/coverage_waivers.yaml).
COVERAGE_ENV := LOOM_COVERAGE_DIR=build/coverage LOOM_RTL_COVERAGE=build/coverage/rtl
coverage: $(STAMP)
	rm -rf build/coverage
	mkdir -p build/coverage/rtl
	$(COVERAGE_ENV) $(PY) -m pytest -q -m "not slow and not gpu"
	$(COVERAGE_ENV) $(PY) -m verif fuzz --seed $(SEED) -n $(N) --out build/coverage/fuzz
	$(PY) -m verif.coverage report build/coverage --json build/coverage/report.json
	$(PY) -m verif.rtl_coverage report build/coverage/rtl --json build/coverage/rtl.json \
		--markdown build/coverage/rtl.md

# The verification figures (fuzz outcomes, functional coverage and its holes, counters
# checked, a from-scratch RTL build) into bench/verification.{json,md}.
bench-verif: coverage
	$(PY) bench/verification.py --build-time

# Mutation testing of rtl/ (verif/mutate.py): MUTANTS mutants sampled with seed SEED from
# pyslang syntax trees, each built (LOOM_RTL_OVERLAY) and run through the random programs,
# then the directed RTL tests, until one fails: the score per module and operator and the
# survivors in build/mutate/report.{md,json}. JOBS mutants at a time (default: one per CPU).
MUTANTS ?= 240
JOBS ?=
mutate: $(STAMP)
	$(PY) -m verif.mutate run --seed $(SEED) -n $(MUTANTS) $(if $(JOBS),--jobs $(JOBS))

# A regression (verif/regress.py): model runs, chunks of random programs and mutants as
# independent jobs on a local pool of JOBS processes (default: one per CPU), or on the
# Dask scheduler SCHEDULER=tcp://host:port; one report in build/regress/ (junit.xml,
# report.md, report.json); exit status 1 when a job failed or erred. Suite: MODELS=a,b@ref
# (default: every small model on ref and verilator), FUZZ_SEEDS=0-3, N= programs per seed
# (default 500), CHUNK= per job (100), MUTANTS= sampled with SEED (default 4), HW=,
# FAULT=, TIMEOUT= seconds per job. N and MUTANTS count only when given: their defaults
# above are make fuzz's and make mutate's.
SCHEDULER ?=
MODELS ?=
FUZZ_SEEDS ?=
CHUNK ?=
TIMEOUT ?=
given = $(filter command line environment,$(origin $(1)))
regress: $(STAMP)
	$(PY) -m verif.regress run --seed $(SEED) $(if $(SCHEDULER),--scheduler $(SCHEDULER)) \
		$(if $(JOBS),--jobs $(JOBS)) $(if $(call given,MODELS),--models '$(MODELS)') \
		$(if $(FUZZ_SEEDS),--fuzz-seeds $(FUZZ_SEEDS)) \
		$(if $(call given,N),--fuzz-programs $(N)) $(if $(CHUNK),--fuzz-chunk $(CHUNK)) \
		$(if $(call given,MUTANTS),--mutants $(MUTANTS)) $(if $(HW),--hw $(HW)) \
		$(if $(FAULT),--fault $(FAULT)) $(if $(TIMEOUT),--timeout $(TIMEOUT))

# The model coverage table docs/models.md (sim/cli/coverage.py): every registered model
# through the compiler and the ISA model, the RTL= ones also through the RTL; per model
# the ATen ops and where each runs, CPU ops, device segments, transfers, times, RTL
# cycles and accuracy against eager PyTorch. MODELS= a subset, space or comma separated,
# registered names or package.module:function (the file keeps the other rows); RTL=
# (default: the small ones, *-tiny, mlp, llama-odd, gpt2-stdlib; RTL= for none); LAYERS=n or
# LAYERS='name=n ...' cuts transformer blocks; TOKENS, SEED, HW as for make sim.
RTL ?=
models: $(STAMP)
	$(PY) -m sim.cli.coverage --tokens $(TOKENS) --seed $(SEED) \
		$(if $(MODELS),--models '$(MODELS)') $(if $(call given,RTL),--rtl '$(RTL)') \
		$(if $(LAYERS),--layers '$(LAYERS)') $(if $(HW),--hw $(HW))

# The byte-level GPT-2 trained on the Python standard library's source (weights/README.md):
# deterministic, ~15 minutes on one core; rewrites weights/gpt2-stdlib/.
train-tiny: $(STAMP)
	$(PY) weights/train_tiny.py

clean:
	rm -rf build

# The analytic performance model (perf/, docs/perf.md): predicted cycles per layer and per
# layer kind, against the RTL with RTL=1 (RTL=0 never; unset: when the run is cheap), into
# build/perf/<model>/<hw name>/ (figures.json, roofline.png, utilization.png, report.md).
.PHONY: perf explore
perf: $(STAMP)
	$(PY) -m perf predict $(MODEL) --tokens $(TOKENS) --seed $(SEED) \
		$(if $(LAYERS),--layers $(LAYERS)) $(if $(HW),--hw $(HW)) \
		$(if $(filter 1,$(RTL)),--rtl) $(if $(filter 0,$(RTL)),--no-rtl)

# Hardware sweeps with the model (prefill at 8 and 64 tokens unless TOKENS= is given):
# SWEEP='array_dim=8,16,32 dram_bus_bits=128,256' varies each parameter alone around HW;
# RTL=1 also runs gpt2-tiny through the RTL on a few points. build/explore/: CSV, JSON, plots.
SWEEP ?=
explore: $(STAMP)
	$(PY) -m perf explore $(MODEL) $(if $(HW),--hw $(HW)) $(if $(SWEEP),--sweep '$(SWEEP)') \
		$(if $(call given,TOKENS),--tokens $(TOKENS)) $(if $(LAYERS),--layers $(LAYERS)) \
		$(if $(filter 1,$(RTL)),--rtl)
