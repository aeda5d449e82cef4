# eosproxy - Kafka sidecar proxy. See README.md.
#
#   make            build build/eosproxy (installs missing Debian packages first)
#   make run        eosproxy on localhost:9092 in front of an embedded 3-broker mock
#   make test       unit + integration tests, with ASan+UBSan
#   make bench      direct-vs-proxy benchmark table
#   make fuzz       libFuzzer targets for the codec (FUZZ_SECONDS each)
#   make format     clang-format every C file

CC       ?= cc
PKGS     := libevent libevent_openssl libevent_pthreads hiredis rdkafka yaml-0.1 openssl
VERSION  := $(shell cat VERSION 2>/dev/null || echo 0.0.0)
WARN     := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wno-unused-parameter
BASEFLAGS = -std=c11 -D_GNU_SOURCE -g -pthread $(WARN) -DEOSPROXY_VERSION='"$(VERSION)"' \
            $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
CFLAGS   ?= -O2
LIBS      = $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lz -lsnappy -llz4 -lzstd -lm
SANFLAGS := -O1 -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

# The pure codec (proxy/k*.c): no libevent. Fuzzed and unit-tested alone.
CODEC_SRCS := $(wildcard proxy/k*.c)
SRCS       := $(filter-out proxy/main.c,$(wildcard proxy/*.c policy/*.c))
OBJS       := $(SRCS:%.c=build/obj/%.o)
ASAN_OBJS  := $(SRCS:%.c=build/asan/obj/%.o)
UNIT_SRCS  := $(wildcard tests/unit/test_*.c)
UNIT_BINS  := $(UNIT_SRCS:tests/unit/%.c=build/asan/%)
FUZZ_SRCS  := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS  := $(FUZZ_SRCS:tests/fuzz/%.c=build/fuzz/%)
FUZZ_SECONDS ?= 60
PYTHON   := /usr/bin/python3
DEPS_STAMP := build/.deps-ok

.PHONY: all deps run test unit integration bench fuzz format clean check-format
all: build/eosproxy

# Installs whatever is missing (apt packages, npm packages) when run as root.
deps: $(DEPS_STAMP)
$(DEPS_STAMP): tests/tools/deps.sh
	@bash tests/tools/deps.sh
	@mkdir -p build && touch $@

build/obj/%.o: %.c | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	@$(CC) $(BASEFLAGS) $(CFLAGS) -MMD -MP -c $< -o $@

build/asan/obj/%.o: %.c | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	@echo "  CC asan $<"
	@$(CC) $(BASEFLAGS) $(SANFLAGS) -MMD -MP -c $< -o $@

build/eosproxy: $(OBJS) build/obj/proxy/main.o
	$(CC) $(BASEFLAGS) $(CFLAGS) -o $@ $^ $(LIBS)

build/asan/eosproxy: $(ASAN_OBJS) build/asan/obj/proxy/main.o
	$(CC) $(BASEFLAGS) $(SANFLAGS) -o $@ $^ $(LIBS)

build/asan/test_%: tests/unit/test_%.c tests/unit/unit.h $(ASAN_OBJS)
	@echo "  LD asan $@"
	@$(CC) $(BASEFLAGS) $(SANFLAGS) -Iproxy -Ipolicy -o $@ $< $(ASAN_OBJS) $(LIBS)

build/mockcluster: tests/mockcluster/mockcluster.c | $(DEPS_STAMP)
	$(CC) $(BASEFLAGS) -O2 -o $@ $< $(LIBS)

build/bench: tests/bench/bench.c | $(DEPS_STAMP)
	$(CC) $(BASEFLAGS) -O2 -o $@ $< $(LIBS)

run: build/eosproxy
	./build/eosproxy -c conf/demo.yaml

unit: $(UNIT_BINS) build/eosproxy
	@bash tests/tools/run-unit.sh $(UNIT_BINS)

integration: build/asan/eosproxy build/eosproxy build/mockcluster
	cd tests/integration && EOSPROXY_BIN=$(CURDIR)/build/asan/eosproxy \
	  MOCKCLUSTER_BIN=$(CURDIR)/build/mockcluster \
	  $(PYTHON) -m pytest -q -p no:cacheprovider $(PYTEST_ARGS) .

test: deps
	$(MAKE) unit
	$(MAKE) integration

bench: build/eosproxy build/mockcluster build/bench
	bash tests/bench/run.sh

build/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(CODEC_SRCS) | $(DEPS_STAMP)
	@mkdir -p build/fuzz
	clang -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -Iproxy -o $@ $< $(CODEC_SRCS) -lz -lsnappy -llz4 -lzstd

fuzz: $(FUZZ_BINS)
	@for f in $(FUZZ_BINS); do n=$$(basename $$f); mkdir -p build/fuzz/corpus-$$n; \
	  echo "== $$n ($(FUZZ_SECONDS)s)"; \
	  $$f -max_total_time=$(FUZZ_SECONDS) -max_len=65536 build/fuzz/corpus-$$n tests/fuzz/seeds || exit 1; done

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

check-format:
	@clang-format --dry-run --Werror $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build

-include $(OBJS:.o=.d) $(ASAN_OBJS:.o=.d) build/obj/proxy/main.d build/asan/obj/proxy/main.d
