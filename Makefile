# eosproxy - Kafka sidecar proxy. See README.md.
#
#   make            build build/eosproxy (installs missing Debian packages first)
#   make run        eosproxy on localhost:9092 in front of an embedded 3-broker mock
#   make test       unit + integration tests, with ASan+UBSan
#   make bench      direct-vs-proxy benchmark table
#   make soak       dedup soak: 1,000,000 JSON events through eosproxy (minutes)
#   make fuzz       libFuzzer targets for the codec (FUZZ_SECONDS each)
#   make format     clang-format every C file

CC       ?= cc
# B: the build directory (several checkouts or agents may build side by side).
B        ?= build
PKGS     := libevent libevent_openssl libevent_pthreads hiredis rdkafka yaml-0.1 openssl
VERSION  := $(shell cat VERSION 2>/dev/null || echo 0.0.0)
WARN     := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wno-unused-parameter
BASEFLAGS = -std=c11 -D_GNU_SOURCE -g -pthread $(WARN) -DEOSPROXY_VERSION='"$(VERSION)"' $(INCS) \
            $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
CFLAGS   ?= -O2
LIBS      = $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lz -lsnappy -llz4 -lzstd -lm
SANFLAGS := -O1 -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

# Source folders (README "Source map"); every one is on the include path.
SRC_DIRS   := proxy proxy/codec proxy/conn proxy/security proxy/engines proxy/redis proxy/dlqtool policy
INCS       := $(addprefix -I,$(SRC_DIRS))
# The pure codec (proxy/codec): no libevent. Fuzzed and unit-tested alone.
CODEC_SRCS := $(wildcard proxy/codec/*.c)
SRCS       := $(filter-out proxy/main.c,$(wildcard $(addsuffix /*.c,$(SRC_DIRS))))
OBJS       := $(SRCS:%.c=$(B)/obj/%.o)
ASAN_OBJS  := $(SRCS:%.c=$(B)/asan/obj/%.o)
UNIT_SRCS  := $(wildcard tests/unit/test_*.c)
UNIT_BINS  := $(UNIT_SRCS:tests/unit/%.c=$(B)/asan/%)
FUZZ_SRCS  := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS  := $(FUZZ_SRCS:tests/fuzz/%.c=$(B)/fuzz/%)
FUZZ_SECONDS ?= 60
PYTHON   := /usr/bin/python3
DEPS_STAMP := $(B)/.deps-ok

.PHONY: all deps run test unit integration reference bench soak fuzz fuzz-smoke format clean check-format
all: $(B)/eosproxy

# Installs whatever is missing (apt packages, npm packages) when run as root.
deps: $(DEPS_STAMP)
$(DEPS_STAMP): tests/tools/deps.sh
	@bash tests/tools/deps.sh
	@mkdir -p $(B) && touch $@

$(B)/obj/%.o: %.c | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	@$(CC) $(BASEFLAGS) $(CFLAGS) -MMD -MP -c $< -o $@

$(B)/asan/obj/%.o: %.c | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	@echo "  CC asan $<"
	@$(CC) $(BASEFLAGS) $(SANFLAGS) -MMD -MP -c $< -o $@

$(B)/eosproxy: $(OBJS) $(B)/obj/proxy/main.o
	$(CC) $(BASEFLAGS) $(CFLAGS) -o $@ $^ $(LIBS)

$(B)/asan/eosproxy: $(ASAN_OBJS) $(B)/asan/obj/proxy/main.o
	$(CC) $(BASEFLAGS) $(SANFLAGS) -o $@ $^ $(LIBS)

$(B)/asan/test_%: tests/unit/test_%.c tests/unit/unit.h $(ASAN_OBJS)
	@echo "  LD asan $@"
	@$(CC) $(BASEFLAGS) $(SANFLAGS) -o $@ $< $(ASAN_OBJS) $(LIBS)

# test_dedup plays Redis with the dedup fuzz target's in-process stand-in
# (tests/fuzz/fake_redisc.c) in place of redisc.c.
$(B)/asan/test_dedup: tests/unit/test_dedup.c tests/unit/unit.h tests/fuzz/fake_redisc.c tests/fuzz/fake_redisc.h $(ASAN_OBJS)
	@echo "  LD asan $@"
	@$(CC) $(BASEFLAGS) $(SANFLAGS) -o $@ $< tests/fuzz/fake_redisc.c \
	  $(filter-out $(B)/asan/obj/proxy/redis/redisc.o $(B)/asan/obj/proxy/redis/redisc_cluster.o \
	  $(B)/asan/obj/proxy/redis/redisc_sentinel.o,$(ASAN_OBJS)) $(LIBS)

# test_dedupidx plays Redis with the same stand-in (its last case relays
# the pipelines to a real redis-server through hiredis).
$(B)/asan/test_dedupidx: tests/unit/test_dedupidx.c tests/unit/unit.h tests/fuzz/fake_redisc.c tests/fuzz/fake_redisc.h $(ASAN_OBJS)
	@echo "  LD asan $@"
	@$(CC) $(BASEFLAGS) $(SANFLAGS) -o $@ $< tests/fuzz/fake_redisc.c \
	  $(filter-out $(B)/asan/obj/proxy/redis/redisc.o $(B)/asan/obj/proxy/redis/redisc_cluster.o \
	  $(B)/asan/obj/proxy/redis/redisc_sentinel.o,$(ASAN_OBJS)) $(LIBS)

$(B)/mockcluster: tests/mockcluster/mockcluster.c | $(DEPS_STAMP)
	$(CC) $(BASEFLAGS) -O2 -o $@ $< $(LIBS)

$(B)/bench: tests/bench/bench.c | $(DEPS_STAMP)
	$(CC) $(BASEFLAGS) -O2 -o $@ $< $(LIBS)

run: $(B)/eosproxy
	./$(B)/eosproxy -c conf/demo.yaml

unit: $(UNIT_BINS) $(B)/eosproxy
	@bash tests/tools/run-unit.sh $(UNIT_BINS)
	@$(PYTHON) tests/tools/reference.py $(B)/eosproxy

# Rewrites README.md's generated reference tables from the code.
reference: $(B)/eosproxy
	$(PYTHON) tests/tools/reference.py $(B)/eosproxy --fix

integration: $(B)/asan/eosproxy $(B)/eosproxy $(B)/mockcluster
	cd tests/integration && EOSPROXY_BIN=$(CURDIR)/$(B)/asan/eosproxy \
	  MOCKCLUSTER_BIN=$(CURDIR)/$(B)/mockcluster \
	  $(PYTHON) -m pytest -q -p no:cacheprovider $(PYTEST_ARGS) .

test: deps
	$(MAKE) unit
	$(MAKE) fuzz-smoke
	$(MAKE) integration

# The dedup soak at full size against the optimised build (minutes; not in CI).
SOAK_EVENTS ?= 1000000
soak: deps $(B)/eosproxy $(B)/mockcluster
	cd tests/integration && EOSPROXY_BIN=$(CURDIR)/$(B)/eosproxy MOCKCLUSTER_BIN=$(CURDIR)/$(B)/mockcluster \
	  SOAK_EVENTS=$(SOAK_EVENTS) SOAK_RSS_MIB=512 $(PYTHON) -m pytest -q -s -p no:cacheprovider test_soak.py

bench: $(B)/eosproxy $(B)/mockcluster $(B)/bench
	EOSPROXY_BIN=$(CURDIR)/$(B)/eosproxy MOCKCLUSTER_BIN=$(CURDIR)/$(B)/mockcluster \
	  BENCH_BIN=$(CURDIR)/$(B)/bench bash tests/bench/run.sh

$(B)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(CODEC_SRCS) | $(DEPS_STAMP)
	@mkdir -p $(B)/fuzz
	clang -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -Iproxy/codec -o $@ $< $(CODEC_SRCS) -lz -lsnappy -llz4 -lzstd

# Redis Cluster slot routing: pure, but it reads replies hiredis parsed.
$(B)/fuzz/fuzz_rcluster: tests/fuzz/fuzz_rcluster.c proxy/redis/rcluster.c | $(DEPS_STAMP)
	@mkdir -p $(B)/fuzz
	clang -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -Iproxy/redis $(shell pkg-config --cflags hiredis 2>/dev/null) -o $@ $^ -lhiredis

# Engine targets drive a whole engine through its public entry points. They
# link every module but main.c, with the engine's I/O boundary replaced by an
# in-process stand-in from tests/fuzz/ (fake_redisc.c for dedup, fake_lane.c
# for the upgrade and txn engines), so generated input plays Redis or the brokers.
ENGINE_FUZZ_CFLAGS = -std=c11 -D_GNU_SOURCE -DEOSPROXY_VERSION='"$(VERSION)"' -g -O1 -pthread -fsanitize=fuzzer,address,undefined \
  -fno-sanitize-recover=undefined $(INCS) $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
$(B)/fuzz/fuzz_dedup: tests/fuzz/fuzz_dedup.c tests/fuzz/fake_redisc.c tests/fuzz/fake_redisc.h $(filter-out proxy/redis/redisc.c proxy/redis/redisc_cluster.c proxy/redis/redisc_sentinel.c,$(SRCS)) | $(DEPS_STAMP)
	@mkdir -p $(B)/fuzz
	clang $(ENGINE_FUZZ_CFLAGS) -o $@ $(filter %.c,$^) $(LIBS)
$(B)/fuzz/fuzz_upgrade: tests/fuzz/fuzz_upgrade.c tests/fuzz/fake_lane.c $(filter-out proxy/engines/lane.c,$(SRCS)) | $(DEPS_STAMP)
	@mkdir -p $(B)/fuzz
	clang $(ENGINE_FUZZ_CFLAGS) -o $@ $^ $(LIBS)
$(B)/fuzz/fuzz_txn: tests/fuzz/fuzz_txn.c tests/fuzz/fake_lane.c $(filter-out proxy/engines/lane.c,$(SRCS)) | $(DEPS_STAMP)
	@mkdir -p $(B)/fuzz
	clang $(ENGINE_FUZZ_CFLAGS) -o $@ $^ $(LIBS)

# A short seeded run of every fuzz target (part of make test): FUZZ_SMOKE_SECONDS each.
FUZZ_SMOKE_SECONDS ?= 5
fuzz-smoke: $(FUZZ_BINS)
	@for f in $(FUZZ_BINS); do n=$$(basename $$f); rm -rf $(B)/fuzz/smoke-$$n; mkdir -p $(B)/fuzz/smoke-$$n; \
	  $$f -seed=1 -max_total_time=$(FUZZ_SMOKE_SECONDS) -max_len=65536 $(B)/fuzz/smoke-$$n tests/fuzz/seeds >$(B)/fuzz/$$n.smoke.log 2>&1 \
	    || { tail -n 60 $(B)/fuzz/$$n.smoke.log; echo "fuzz-smoke: $$n FAILED"; exit 1; }; \
	  echo "fuzz-smoke: $$n $$(grep -oE 'Done [0-9]+ runs' $(B)/fuzz/$$n.smoke.log)"; done

fuzz: $(FUZZ_BINS)
	@for f in $(FUZZ_BINS); do n=$$(basename $$f); mkdir -p $(B)/fuzz/corpus-$$n; \
	  echo "== $$n ($(FUZZ_SECONDS)s)"; \
	  $$f -max_total_time=$(FUZZ_SECONDS) -max_len=65536 $(B)/fuzz/corpus-$$n tests/fuzz/seeds || exit 1; done

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

check-format:
	@clang-format --dry-run --Werror $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(B)

-include $(OBJS:.o=.d) $(ASAN_OBJS:.o=.d) $(B)/obj/proxy/main.d $(B)/asan/obj/proxy/main.d
include tests/kafka/kafka.mk
