# kafka.mk - real Apache Kafka for development and tests (included by the
# Makefile). See tests/kafka/fetch.sh and tests/integration/kafka_real.py.
#
#   make run-kafka    eosproxy on localhost:9092 (conf/demo.yaml's listen and
#                     topics; KAFKA_RUN_CONF=file for another) in front of a
#                     local real Kafka 4 broker; Ctrl-C stops both
#   make kafka-libs   fetch Apache Kafka into tests/kafka/.cache and compile
#                     the Java test harness (make deps does it too)

KAFKA_RUN_CONF ?= conf/demo.yaml

.PHONY: run-kafka kafka-libs
kafka-libs: $(DEPS_STAMP)
	@bash tests/kafka/fetch.sh >/dev/null

run-kafka: $(B)/eosproxy kafka-libs
	$(PYTHON) tests/kafka/run.py ./$(B)/eosproxy $(KAFKA_RUN_CONF)
