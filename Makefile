# The two entry points the README names, plus the pieces they are made of.
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: setup build test lab lab-down

setup:
	./scripts/setup.sh

build: setup
	$(CARGO) build --workspace --bins

## make test: every test of the workspace, against real ovsdb-server/OVN/OVS and network namespaces (root).
test: setup
	./scripts/test.sh

## make lab: a 2-node lab with the demo (root).
lab: setup
	./scripts/lab.sh up

lab-down:
	./scripts/lab.sh down
