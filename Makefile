# cworker build. `make` builds build/cworker; `make test` installs what is missing,
# starts private RabbitMQ/PostgreSQL and runs unit, sanitizer and integration tests.
CC      ?= cc
PKGS    := librabbitmq libpq json-c libarchive zlib openssl uuid libmicrohttpd libcurl
TESTDATA := $(abspath tests/testdata)
BUILD   ?= build
PYTHON  := /usr/bin/python3

# pkg-config answers nothing at all when one package is missing: name it, rather than fail
# later on a header (`make deps` installs them; `make test` runs it first).
PKG_MISSING := $(shell for p in $(PKGS); do pkg-config --exists $$p || echo $$p; done)
ifneq ($(PKG_MISSING),)
$(warning missing -dev packages for pkg-config: $(PKG_MISSING) (make deps installs them))
endif
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

CFLAGS  ?= -O2 -g
CFLAGS  += -std=c11 -pthread -D_GNU_SOURCE -Wall -Wextra -Werror -Iinclude $(PKG_CFLAGS) $(EXTRA_CFLAGS)
LDLIBS  += $(PKG_LIBS) -lm $(EXTRA_LDFLAGS)

SRCS      := $(shell find worker -name '*.c' | sort)
LIB_SRCS  := $(filter-out worker/main.c,$(SRCS))
# The dashboard page (worker/ops/assets/), compiled in as a C array (ops/dashboard_page.h).
PAGE_OBJ  := $(BUILD)/gen/dashboard_page.o
OBJS      := $(SRCS:%.c=$(BUILD)/%.o) $(PAGE_OBJ)
LIB_OBJS  := $(LIB_SRCS:%.c=$(BUILD)/%.o) $(PAGE_OBJ)
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
SANITIZE  := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer

.PHONY: all tools unit asan integration test deps services-start services-stop demo demo-stop \
        format format-check clean valgrind chaos bench compose-test fuzz fuzz-build

all: $(BUILD)/cworker

$(BUILD)/cworker: $(OBJS)
	@echo "  LD    $@"
	@$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC    $<"
	@$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/gen/dashboard_page.c: worker/ops/assets/dashboard.html
	@mkdir -p $(dir $@)
	@echo "  GEN   $@"
	@# od (coreutils) rather than xxd, which the image's build stage does not have
	@set -e; { echo '/* Generated from $< by the Makefile: do not edit. */'; \
	   echo '#include "ops/dashboard_page.h"'; \
	   echo 'const unsigned char dashboard_html[] = {'; \
	   od -An -v -tx1 < $< | sed 's/ \([0-9a-f][0-9a-f]\)/0x\1, /g'; echo '0x00};'; \
	   echo 'const unsigned int dashboard_html_len = sizeof dashboard_html - 1;'; } > $@.tmp
	@mv $@.tmp $@

$(PAGE_OBJ): $(BUILD)/gen/dashboard_page.c
	@echo "  CC    $<"
	@$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/tests/%: tests/unit/%.c $(LIB_OBJS)
	@mkdir -p $(dir $@)
	@echo "  LD    $@"
	@$(CC) $(CFLAGS) -DTESTDATA_DIR='"$(TESTDATA)"' -o $@ $< $(LIB_OBJS) $(LDLIBS) -lcmocka

# Test tools the integration tests run (not unit tests: they need servers).
$(BUILD)/tests/s3_fetch: tests/tools/s3_fetch.c $(LIB_OBJS)
	@mkdir -p $(dir $@)
	@echo "  LD    $@"
	@$(CC) $(CFLAGS) -o $@ $< $(LIB_OBJS) $(LDLIBS)

tools: $(BUILD)/tests/s3_fetch

unit: $(UNIT_BINS)
	@set -e; for t in $(UNIT_BINS); do echo "== $$t"; $$t; done

# The unit tests again under AddressSanitizer + UndefinedBehaviorSanitizer.
asan:
	$(MAKE) BUILD=build-asan EXTRA_CFLAGS="$(SANITIZE)" EXTRA_LDFLAGS="$(SANITIZE)" unit

valgrind: $(UNIT_BINS)
	@set -e; for t in $(UNIT_BINS); do \
	  valgrind -q --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite $$t; done

deps:
	bash tests/env/install-deps.sh

# The integration tests drive a sanitizer build of the worker: the harness fails a test on
# any AddressSanitizer/UBSan/LeakSanitizer report in the worker's log and on any ERROR line
# the test did not declare with @pytest.mark.expect_log_errors.
integration:
	$(MAKE) BUILD=build-asan EXTRA_CFLAGS="$(SANITIZE)" EXTRA_LDFLAGS="$(SANITIZE)" build-asan/cworker build-asan/tests/s3_fetch
	bash tests/env/services.sh start
	CWORKER_BIN=$(abspath build-asan/cworker) \
	  $(PYTHON) -m pytest -p no:cacheprovider -q tests/integration

test: deps
	$(MAKE) format-check all unit asan integration

# A chaos run against the private services: kills executors and workers, restarts RabbitMQ
# and PostgreSQL while runs flow, then checks that no run is lost, duplicated or partial.
chaos: all
	bash tests/env/services.sh start
	$(PYTHON) tests/py/chaos.py --runs 200 --seconds 75

# Throughput, memory and CPU of cworker against a Python Celery worker doing the same job
# (tests/bench/py_worker.py), printed as ratios and written to .state/bench.json; never a
# pass/fail on speed. BENCH_RUNS (200) and BENCH_REPEAT (2) size it.
bench:
	$(PYTHON) tests/bench/bench.py

# docker/Dockerfile built and docker/docker-compose.yml run for real with podman and
# podman-compose (tests/compose/): three workers, runs from the Python Celery client, a
# database outage mid-batch. Its own containers on free loopback ports; the shared test
# servers are not used. Exit 77 from tests/compose/run.sh (make reports it as an error)
# means skipped: podman cannot run containers on this machine.
compose-test:
	bash tests/compose/run.sh

# libFuzzer targets (tests/fuzz/README.md) built with clang under ASan+UBSan into
# build-fuzz/, each run for FUZZ_SECONDS, one at a time; fails when any target crashes.
FUZZ_BUILD   := build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := celery_message mq_json kombu_json conf_parser archive_reader
FUZZ_CFLAGS  := $(SANITIZE) -fsanitize=fuzzer-no-link

fuzz:
	bash tests/fuzz/install-deps.sh
	$(MAKE) BUILD=$(FUZZ_BUILD) CC=clang EXTRA_CFLAGS="$(FUZZ_CFLAGS)" EXTRA_LDFLAGS="$(SANITIZE)" \
	  fuzz-build
	bash tests/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

fuzz-build: $(FUZZ_TARGETS:%=$(BUILD)/fuzz/fuzz_%) $(BUILD)/fuzz/seed_gen

$(BUILD)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz_input.c tests/fuzz/fuzz_input.h $(LIB_OBJS)
	@mkdir -p $(dir $@)
	@echo "  LD    $@"
	@$(CC) $(CFLAGS) -fsanitize=fuzzer -Itests/fuzz -o $@ $(filter %.c %.o,$^) $(LDLIBS)

$(BUILD)/fuzz/seed_gen: tests/fuzz/seed_gen.c tests/fuzz/fuzz_input.c tests/fuzz/fuzz_input.h \
                        tests/unit/fixtures/celery_capture.h
	@mkdir -p $(dir $@)
	@echo "  LD    $@"
	@$(CC) $(CFLAGS) -Itests/fuzz -o $@ $(filter %.c,$^) $(LDLIBS)

services-start:
	bash tests/env/services.sh start

services-stop:
	bash tests/env/services.sh stop

.PHONY: test-cluster cluster-stop

# Tests beyond one machine: a three-node RabbitMQ cluster with AMQPS and a PostgreSQL primary
# with a streaming standby, TLS from a private CA (tests/env/cluster.sh; its own ports and
# .state/cluster/, not the shared servers). Every test whose name or module says `cluster`;
# they skip themselves without CWORKER_CLUSTER=1, so `make test` does not pay for them.
# The cluster stays up for the next run (then start is ~2 s; ~12 s from stopped, ~30 s from
# nothing); `make cluster-stop` stops it.
test-cluster:
	$(MAKE) BUILD=build-asan EXTRA_CFLAGS="$(SANITIZE)" EXTRA_LDFLAGS="$(SANITIZE)" build-asan/cworker
	bash tests/env/cluster.sh start
	CWORKER_CLUSTER=1 CWORKER_BIN=$(abspath build-asan/cworker) \
	  $(PYTHON) -m pytest -p no:cacheprovider -q tests/integration -k cluster

cluster-stop:
	bash tests/env/cluster.sh stop

demo: deps
	$(MAKE) all
	bash tests/env/demo.sh

demo-stop:
	bash tests/env/services.sh stop

format:
	clang-format -i $$(find worker include tests -name '*.[ch]')

format-check:
	@echo "  FORMAT-CHECK (clang-format, .clang-format)"
	@clang-format --dry-run -Werror $$(find worker include tests -name "*.[ch]")

clean:
	rm -rf build build-asan

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
