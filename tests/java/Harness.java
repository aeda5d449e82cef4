// Harness - the Java client (org.apache.kafka:kafka-clients) for eosproxy's
// integration tests against a real broker (tests/integration/test_real_java.py).
//
//   java -cp HARNESS:LIBS/* Harness COMMAND --key value ...
//
// Commands (every one prints exactly one JSON line on stdout, last, and exits
// 0 unless the harness itself is misused; the test judges the outcome):
//
//   produce   --bootstrap B --topic T --count N [--prefix S] [--partitions P]
//             [--idempotence true|false] [--acks all|1|0]
//             [--transactional-id ID --transactions commit:N,abort:N,...]
//       Sends N records (value PREFIX-i, key k(i%5); with --partitions, record
//       i goes to partition i%P), or with --transactional-id one transaction
//       per item of --transactions, committed or aborted as it says (values
//       PREFIX-t<j>-<i>). Out: {"acked": [{partition, offset, value}],
//       "committed": [values], "aborted": [values], "error": ERR|null}.
//
//   consume   --bootstrap B --topic T [--isolation read_committed|read_uncommitted]
//             [--timeout-ms MS]
//       Reads every partition from the beginning up to its end offset as the
//       isolation level sees it (the last stable offset for read_committed).
//       Out: {"records": [{partition, offset, value}], "error": ERR|null}.
//
//   group     --bootstrap B --topic T --group G --partitions P --count N [--timeout-ms MS]
//       A consumer group of two members (classic protocol), with rebalances:
//       member a joins alone; b joins; N records are produced and the two
//       consume them (committing after each poll and on revocation); b
//       leaves; N more records are produced and a consumes them.
//       Out: {"a_alone": [partitions], "both": {"a": [...], "b": [...]},
//       "after_leave": [...], "consumed": {"a": [values], "b": [values]},
//       "produced": [values], "error": ERR|null}.
//
//   cluster   --bootstrap B
//       Admin.describeCluster. Out: {"cluster_id", "controller": {id, host,
//       port}, "nodes": [{id, host, port}], "error": ERR|null}.
//
//   poison-consume --bootstrap B --topic T --group G [--poison VALUE]
//             [--crash close|halt] [--instance-id ID] [--timeout-ms MS]
//       A consumer in group G (classic protocol, subscribe) that processes
//       records one by one and commits each (commitSync of offset+1) before
//       the next. A record whose value is VALUE (default POISON) makes it
//       "crash" without committing it: --crash close closes the consumer (a
//       LeaveGroup, so a restart joins at once) and exits 3; halt prints the
//       JSON line and halts the JVM with 3 (no LeaveGroup: pair it with
//       --instance-id, static membership, for a quick restart). Exits 0 once
//       it owns every partition of T and each position reached the end
//       offset read at start; 4 at the deadline; 5 on a client error.
//       Out: {"records": [{partition, offset, value}] (processed and
//       committed), "outcome": "done"|"poison"|"timeout"|"error",
//       "poison": {partition, offset, value}|null, "committed_at_start":
//       {partition: offset|null}, and when done "positions" and "end"
//       ({partition: offset}), "error": ERR|null}.
//
//   dlt-read  --bootstrap B --topic DLQ [--timeout-ms MS] [--reference-bootstrap O]
//       Reads a dead-letter topic from the beginning to its end offsets and
//       decodes each record's DLT headers as Spring Kafka reads what its
//       DeadLetterPublishingRecoverer writes: the KafkaHeaders.DLT_* names,
//       the last header of each name, ByteBuffer big-endian int (partition)
//       and longs (offset, timestamp), UTF-8 strings, TimestampType.forName
//       for the type. With --reference-bootstrap, each record's original
//       (the topic, partition and offset its headers name, read from
//       cluster O) goes through Spring's own DeadLetterRecordManager, whose
//       original-* headers are compared byte for byte with the DLQ record's,
//       and so are the key, value, timestamp and the other headers.
//       Out: {"records": [{partition, offset, key, value, key_hex, value_hex,
//       timestamp, timestamp_type, headers: [[name, hex|null]], dlt: {topic,
//       partition, offset, timestamp, timestamp_type, consumer_group,
//       exception_fqcn, exception_message: the ones present}, dlt_errors:
//       [text], reference: {HEADER|key|value|timestamp|headers: bool, ...}
//       (with --reference-bootstrap)}], "error": ERR|null}.
//
//   spring-dlt-publish --bootstrap B --topic T --partition P --offset O
//             --dlt DLQ [--group G] [--message M]
//       Reads the record T/P/O and dead-letters it to DLQ partition 0 with
//       Spring Kafka's own DeadLetterPublishingRecoverer and KafkaTemplate,
//       as a listener container of group G does after an exception with
//       message M: genuine Spring DLT records, to check dlt-read against.
//       Out: {"published": true, "error": ERR|null}.
//
//   process-loop --bootstrap B --in T --out O --group G [--max-records N]
//             [--commit-delay-ms MS] [--idle-ms MS] [--max-poll-records N]
//             [--auto-commit true|false] [--instance-id ID]
//             [--session-timeout-ms MS] [--timeout-ms MS]
//       An unchanged consume-process-produce application (tests/integration/
//       test_real_bind.py): a plain KafkaConsumer in group G (classic
//       protocol, subscribe to T, auto.offset.reset earliest, the default
//       read_uncommitted, enable.auto.commit false) and a plain KafkaProducer
//       (enable.idempotence false, acks all, no transactional.id). Each poll
//       (at most --max-poll-records, default 20): for each input record
//       P/OFF (key K) one record to O, partition P % partitions(O), key K,
//       value "P/OFF"; producer.flush(); sleep --commit-delay-ms (default
//       0: widens the window between output written and input committed);
//       commitSync(). A failed commit (a rebalance, eosproxy's refusal) is
//       printed and the loop goes on, as such applications do. With
//       --auto-commit true there is no commitSync: the consumer commits
//       what earlier polls returned (auto.commit.interval.ms 200, or
//       --prop) inside poll(), after their output was flushed.
//       --instance-id makes it a static member (group.instance.id).
//       Progress lines on stdout, each flushed at once, before the JSON line
//       (a test reads them to SIGKILL the process at a chosen point):
//         start | assigned P,P.. | revoked P,.. | lost P,..
//         polled N | sent N | flushed N TOTAL | committed N TOTAL
//         commit-failed TYPE MESSAGE | end OUTCOME
//       (N: records of this poll; TOTAL: of this run.) Ends "done" when a
//       poll brings nothing and the group's committed offsets of every
//       partition of T reach the end offsets read at start, "max" once N
//       records are processed and committed, "idle" after --idle-ms
//       (default 60000) with no record, "timeout" at --timeout-ms (default
//       300000); exit 0 in each case, 5 on a client error (a failed send).
//       Out: {"outcome", "processed": records whose output was flushed,
//       "committed": records covered by a successful commitSync,
//       "commit_failures": n, "error": ERR|null}.
//
// Any command also takes --prop key=value (repeatable): extra client
// properties. ERR is {"type": exception class, "message": text} of the
// innermost cause.

import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.Collections;
import java.util.HashMap;
import java.util.HashSet;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.Future;
import java.util.function.BooleanSupplier;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.DescribeClusterResult;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.Headers;
import org.apache.kafka.common.record.TimestampType;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;
import org.springframework.kafka.core.DefaultKafkaProducerFactory;
import org.springframework.kafka.core.KafkaTemplate;
import org.springframework.kafka.listener.DeadLetterPublishingRecoverer;
import org.springframework.kafka.listener.DeadLetterRecordManager;
import org.springframework.kafka.listener.ListenerExecutionFailedException;
import org.springframework.kafka.support.KafkaHeaders;

public final class Harness {
    private final Map<String, List<String>> args = new HashMap<>();

    private Harness(String[] argv, int from) {
        for (int i = from; i < argv.length; i += 2) {
            if (!argv[i].startsWith("--") || i + 1 >= argv.length)
                throw new IllegalArgumentException("expected --key value at " + argv[i]);
            args.computeIfAbsent(argv[i].substring(2), k -> new ArrayList<>()).add(argv[i + 1]);
        }
    }

    public static void main(String[] argv) throws Exception {
        if (argv.length < 1) {
            System.err.println("usage: Harness produce|consume|group|cluster|poison-consume|dlt-read|"
                               + "spring-dlt-publish|process-loop --key value ...");
            System.exit(2);
        }
        Harness h = new Harness(argv, 1);
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("error", null);
        try {
            switch (argv[0]) {
                case "produce" -> h.produce(out);
                case "consume" -> h.consume(out);
                case "group" -> h.group(out);
                case "cluster" -> h.cluster(out);
                case "poison-consume" -> h.poisonConsume(out);
                case "dlt-read" -> h.dltRead(out);
                case "spring-dlt-publish" -> h.springDltPublish(out);
                case "process-loop" -> h.processLoop(out);
                default -> throw new IllegalArgumentException("unknown command " + argv[0]);
            }
        } catch (IllegalArgumentException e) {
            System.err.println("Harness: " + e.getMessage());
            System.exit(2);
        } catch (Exception e) {
            out.put("error", describe(e));
            if (out.containsKey("outcome")) { // poison-consume, process-loop: a client error
                out.put("outcome", "error");
                out.put("exit_code", 5);
            }
        }
        Object code = out.remove("exit_code");
        System.out.println(new ObjectMapper().writeValueAsString(out));
        System.out.flush();
        // Client threads left behind by a failure must not keep the JVM up.
        System.exit(code instanceof Integer ? (Integer) code : 0);
    }

    // ---------------------------------------------------------------- arguments

    private String get(String key, String dflt) {
        List<String> v = args.get(key);
        if (v == null) {
            if (dflt == null)
                throw new IllegalArgumentException("--" + key + " is required");
            return dflt;
        }
        return v.get(v.size() - 1);
    }

    private int getInt(String key, int dflt) {
        return Integer.parseInt(get(key, Integer.toString(dflt)));
    }

    private Properties props(Map<String, Object> base) {
        Properties p = new Properties();
        p.putAll(base);
        p.put("bootstrap.servers", get("bootstrap", null));
        for (String kv : args.getOrDefault("prop", List.of())) {
            int eq = kv.indexOf('=');
            if (eq <= 0)
                throw new IllegalArgumentException("--prop wants key=value, got " + kv);
            p.put(kv.substring(0, eq), kv.substring(eq + 1));
        }
        return p;
    }

    private static Map<String, Object> describe(Throwable e) {
        Throwable t = e;
        while (t.getCause() != null && t.getCause() != t)
            t = t.getCause();
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("type", t.getClass().getName());
        m.put("message", String.valueOf(t.getMessage()));
        m.put("outer", e.getClass().getName() + ": " + e.getMessage());
        return m;
    }

    private static Map<String, Object> rec(int partition, long offset, String value) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("partition", partition);
        m.put("offset", offset);
        m.put("value", value);
        return m;
    }

    private static void await(BooleanSupplier cond, long deadline, String what) throws InterruptedException {
        while (!cond.getAsBoolean()) {
            if (System.currentTimeMillis() > deadline)
                throw new IllegalStateException("timed out waiting for " + what);
            Thread.sleep(50);
        }
    }

    // ---------------------------------------------------------------- produce

    private KafkaProducer<String, String> producer(Map<String, Object> extra) {
        Map<String, Object> base = new HashMap<>();
        base.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        base.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        base.put(ProducerConfig.CLIENT_ID_CONFIG, "eosproxy-it-java");
        base.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, 120000);
        base.putAll(extra);
        return new KafkaProducer<>(props(base));
    }

    private void produce(Map<String, Object> out) throws Exception {
        String topic = get("topic", null);
        String prefix = get("prefix", "java");
        int partitions = getInt("partitions", 0);
        String txnId = get("transactional-id", "");
        Map<String, Object> extra = new HashMap<>();
        extra.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, get("idempotence", "true"));
        extra.put(ProducerConfig.ACKS_CONFIG, get("acks", "all"));
        if (!txnId.isEmpty())
            extra.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, txnId);
        List<Map<String, Object>> acked = new ArrayList<>();
        List<String> committed = new ArrayList<>();
        List<String> aborted = new ArrayList<>();
        out.put("acked", acked);
        out.put("committed", committed);
        out.put("aborted", aborted);
        try (KafkaProducer<String, String> p = producer(extra)) {
            if (txnId.isEmpty()) {
                sendAll(p, topic, partitions, prefix, getInt("count", 0), acked);
                return;
            }
            p.initTransactions();
            int t = 0;
            for (String item : get("transactions", null).split(",")) {
                String[] kv = item.split(":");
                int n = Integer.parseInt(kv[1]);
                List<Map<String, Object>> sent = new ArrayList<>();
                p.beginTransaction();
                sendAll(p, topic, partitions, prefix + "-t" + t, n, sent);
                List<String> values = new ArrayList<>();
                for (Map<String, Object> r : sent)
                    values.add((String) r.get("value"));
                if (kv[0].equals("commit")) {
                    p.commitTransaction();
                    committed.addAll(values);
                    acked.addAll(sent);
                } else {
                    p.abortTransaction();
                    aborted.addAll(values);
                }
                t++;
            }
        }
    }

    private static void sendAll(KafkaProducer<String, String> p, String topic, int partitions,
                                String prefix, int count, List<Map<String, Object>> acked) throws Exception {
        List<Future<RecordMetadata>> futures = new ArrayList<>();
        List<String> values = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            String v = prefix + "-" + i;
            Integer part = partitions > 0 ? i % partitions : null;
            futures.add(p.send(new ProducerRecord<>(topic, part, "k" + (i % 5), v)));
            values.add(v);
        }
        p.flush();
        for (int i = 0; i < count; i++) {
            RecordMetadata md = futures.get(i).get();
            acked.add(rec(md.partition(), md.offset(), values.get(i)));
        }
    }

    // ---------------------------------------------------------------- consume

    private KafkaConsumer<String, String> consumer(Map<String, Object> extra) {
        Map<String, Object> base = new HashMap<>();
        base.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        base.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        base.put(ConsumerConfig.CLIENT_ID_CONFIG, "eosproxy-it-java");
        base.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        base.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        base.putAll(extra);
        return new KafkaConsumer<>(props(base));
    }

    private void consume(Map<String, Object> out) throws Exception {
        String topic = get("topic", null);
        long deadline = System.currentTimeMillis() + getInt("timeout-ms", 60000);
        Map<String, Object> extra = new HashMap<>();
        extra.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, get("isolation", "read_uncommitted"));
        List<Map<String, Object>> records = new ArrayList<>();
        out.put("records", records);
        try (KafkaConsumer<String, String> c = consumer(extra)) {
            List<TopicPartition> tps = new ArrayList<>();
            for (PartitionInfo pi : c.partitionsFor(topic, Duration.ofSeconds(30)))
                tps.add(new TopicPartition(topic, pi.partition()));
            c.assign(tps);
            c.seekToBeginning(tps);
            Map<TopicPartition, Long> end = c.endOffsets(tps, Duration.ofSeconds(30));
            while (true) {
                boolean done = true;
                for (TopicPartition tp : tps)
                    if (c.position(tp, Duration.ofSeconds(30)) < end.get(tp))
                        done = false;
                if (done)
                    break;
                if (System.currentTimeMillis() > deadline)
                    throw new IllegalStateException("timed out before the end offsets " + end);
                for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(200)))
                    records.add(rec(r.partition(), r.offset(), r.value()));
            }
        }
    }

    // ---------------------------------------------------------------- group

    private final class Member implements Runnable {
        final String name;
        final List<String> consumed = Collections.synchronizedList(new ArrayList<>());
        volatile Set<Integer> assigned = Set.of();
        volatile boolean stop;
        volatile Throwable failure;
        final Thread thread;

        Member(String name) {
            this.name = name;
            this.thread = new Thread(this, "member-" + name);
        }

        public void run() {
            Map<String, Object> extra = new HashMap<>();
            extra.put(ConsumerConfig.GROUP_ID_CONFIG, get("group", null));
            extra.put(ConsumerConfig.CLIENT_ID_CONFIG, "eosproxy-it-java-" + name);
            extra.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, "classic");
            extra.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, 10000);
            extra.put(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, 500);
            try (KafkaConsumer<String, String> c = consumer(extra)) {
                c.subscribe(List.of(get("topic", null)), new ConsumerRebalanceListener() {
                    public void onPartitionsRevoked(Collection<TopicPartition> parts) {
                        c.commitSync();
                    }

                    public void onPartitionsAssigned(Collection<TopicPartition> parts) {}
                });
                while (!stop) {
                    ConsumerRecords<String, String> rs = c.poll(Duration.ofMillis(200));
                    for (ConsumerRecord<String, String> r : rs)
                        consumed.add(r.value());
                    if (!rs.isEmpty())
                        c.commitSync();
                    Set<Integer> now = new TreeSet<>();
                    for (TopicPartition tp : c.assignment())
                        now.add(tp.partition());
                    assigned = now;
                }
            } catch (Throwable t) {
                failure = t;
            }
        }
    }

    private void group(Map<String, Object> out) throws Exception {
        String topic = get("topic", null);
        int partitions = getInt("partitions", 0);
        int count = getInt("count", 0);
        long deadline = System.currentTimeMillis() + getInt("timeout-ms", 120000);
        Set<Integer> all = new TreeSet<>();
        for (int i = 0; i < partitions; i++)
            all.add(i);
        Member a = new Member("a");
        Member b = new Member("b");
        List<String> produced = new ArrayList<>();
        out.put("produced", produced);
        try (KafkaProducer<String, String> p = producer(Map.of())) {
            a.thread.start();
            await(() -> a.failure != null || a.assigned.equals(all), deadline, "a alone to own every partition");
            out.put("a_alone", new ArrayList<>(a.assigned));
            b.thread.start();
            await(() -> a.failure != null || b.failure != null ||
                        (!a.assigned.isEmpty() && !b.assigned.isEmpty() && union(a.assigned, b.assigned).equals(all) &&
                         Collections.disjoint(a.assigned, b.assigned)),
                  deadline, "a and b to share the partitions");
            Map<String, Object> both = new LinkedHashMap<>();
            both.put("a", new ArrayList<>(a.assigned));
            both.put("b", new ArrayList<>(b.assigned));
            out.put("both", both);
            List<Map<String, Object>> acked = new ArrayList<>();
            sendAll(p, topic, partitions, "group-1", count, acked);
            for (Map<String, Object> r : acked)
                produced.add((String) r.get("value"));
            await(() -> a.failure != null || b.failure != null || seen(a, b).containsAll(produced), deadline,
                  "a and b to consume the first records");
            b.stop = true;
            b.thread.join(60000);
            await(() -> a.failure != null || a.assigned.equals(all), deadline, "a to own every partition again");
            out.put("after_leave", new ArrayList<>(a.assigned));
            acked.clear();
            sendAll(p, topic, partitions, "group-2", count, acked);
            List<String> second = new ArrayList<>();
            for (Map<String, Object> r : acked)
                second.add((String) r.get("value"));
            produced.addAll(second);
            await(() -> a.failure != null || new HashSet<>(a.consumed).containsAll(second), deadline,
                  "a to consume the second records");
        } finally {
            a.stop = true;
            b.stop = true;
            a.thread.join(60000);
            b.thread.join(60000);
            Map<String, Object> consumed = new LinkedHashMap<>();
            consumed.put("a", new ArrayList<>(a.consumed));
            consumed.put("b", new ArrayList<>(b.consumed));
            out.put("consumed", consumed);
        }
        Throwable f = a.failure != null ? a.failure : b.failure;
        if (f instanceof Exception)
            throw (Exception) f;
        if (f != null)
            throw new RuntimeException(f);
    }

    private static Set<Integer> union(Set<Integer> x, Set<Integer> y) {
        Set<Integer> u = new TreeSet<>(x);
        u.addAll(y);
        return u;
    }

    private static Set<String> seen(Member a, Member b) {
        Set<String> s = new HashSet<>();
        synchronized (a.consumed) {
            s.addAll(a.consumed);
        }
        synchronized (b.consumed) {
            s.addAll(b.consumed);
        }
        return s;
    }

    // ---------------------------------------------------------------- cluster

    private void cluster(Map<String, Object> out) throws Exception {
        Properties p = props(Map.of(AdminClientConfig.CLIENT_ID_CONFIG, "eosproxy-it-java-admin"));
        try (Admin admin = Admin.create(p)) {
            DescribeClusterResult r = admin.describeCluster();
            out.put("cluster_id", r.clusterId().get());
            out.put("controller", node(r.controller().get()));
            List<Map<String, Object>> nodes = new ArrayList<>();
            for (Node n : r.nodes().get())
                nodes.add(node(n));
            out.put("nodes", nodes);
        }
    }

    private static Map<String, Object> node(Node n) {
        Map<String, Object> m = new LinkedHashMap<>();
        if (n == null)
            return m;
        m.put("id", n.id());
        m.put("host", n.host());
        m.put("port", n.port());
        return m;
    }

    // ---------------------------------------------------------------- poison-consume

    private static final class Poison extends RuntimeException {
        Poison() {
            super("poison record", null, false, false);
        }
    }

    private void poisonConsume(Map<String, Object> out) throws Exception {
        String topic = get("topic", null);
        String poison = get("poison", "POISON");
        String crash = get("crash", "close");
        if (!crash.equals("close") && !crash.equals("halt"))
            throw new IllegalArgumentException("--crash wants close or halt");
        long deadline = System.currentTimeMillis() + getInt("timeout-ms", 60000);
        List<Map<String, Object>> records = new ArrayList<>();
        out.put("records", records);
        out.put("outcome", "timeout");
        out.put("poison", null);
        out.put("exit_code", 4);
        Map<String, Object> extra = new HashMap<>();
        extra.put(ConsumerConfig.GROUP_ID_CONFIG, get("group", null));
        extra.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, "classic");
        extra.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, 10000);
        extra.put(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, 500);
        String instance = get("instance-id", "");
        if (!instance.isEmpty())
            extra.put(ConsumerConfig.GROUP_INSTANCE_ID_CONFIG, instance);
        KafkaConsumer<String, String> c = consumer(extra);
        try {
            List<TopicPartition> all = new ArrayList<>();
            for (PartitionInfo pi : c.partitionsFor(topic, Duration.ofSeconds(30)))
                all.add(new TopicPartition(topic, pi.partition()));
            Map<TopicPartition, Long> end = c.endOffsets(all, Duration.ofSeconds(30));
            Map<String, Object> committed = new TreeMap<>();
            for (Map.Entry<TopicPartition, OffsetAndMetadata> e :
                 c.committed(new HashSet<>(all), Duration.ofSeconds(30)).entrySet())
                committed.put(Integer.toString(e.getKey().partition()),
                              e.getValue() == null ? null : e.getValue().offset());
            out.put("committed_at_start", committed); // for messages
            c.subscribe(List.of(topic));
            while (System.currentTimeMillis() < deadline) {
                for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(200))) {
                    Map<String, Object> m = rec(r.partition(), r.offset(), r.value());
                    if (poison.equals(r.value())) {
                        out.put("outcome", "poison");
                        out.put("poison", m);
                        out.put("exit_code", 3);
                        if (crash.equals("halt")) {
                            out.remove("exit_code");
                            System.out.println(new ObjectMapper().writeValueAsString(out));
                            System.out.flush();
                            Runtime.getRuntime().halt(3);
                        }
                        throw new Poison();
                    }
                    c.commitSync(Map.of(new TopicPartition(r.topic(), r.partition()),
                                        new OffsetAndMetadata(r.offset() + 1)));
                    records.add(m);
                }
                if (c.assignment().containsAll(all)) {
                    boolean done = true;
                    Map<String, Object> positions = new TreeMap<>();
                    for (TopicPartition tp : all) {
                        long pos = c.position(tp, Duration.ofSeconds(30));
                        positions.put(Integer.toString(tp.partition()), pos);
                        if (pos < end.get(tp))
                            done = false;
                    }
                    if (done) {
                        out.put("outcome", "done");
                        out.put("exit_code", 0);
                        out.put("positions", positions);
                        Map<String, Object> ends = new TreeMap<>();
                        for (TopicPartition tp : all)
                            ends.put(Integer.toString(tp.partition()), end.get(tp));
                        out.put("end", ends);
                        return;
                    }
                }
            }
        } catch (Poison p) {
            // the crash: nothing committed for it
        } finally {
            // No commit here: enable.auto.commit is false. close() leaves the group.
            c.close(Duration.ofSeconds(10));
        }
    }

    // ---------------------------------------------------------------- dlt-read

    private static final String[] DLT_STRING_HEADERS = {
        KafkaHeaders.DLT_ORIGINAL_TOPIC, KafkaHeaders.DLT_ORIGINAL_TIMESTAMP_TYPE,
        KafkaHeaders.DLT_ORIGINAL_CONSUMER_GROUP, KafkaHeaders.DLT_EXCEPTION_FQCN,
        KafkaHeaders.DLT_EXCEPTION_MESSAGE,
    };

    private static String hex(byte[] b) {
        return b == null ? null : HexFormat.of().formatHex(b);
    }

    private static String utf8(byte[] b) {
        return b == null ? null : new String(b, StandardCharsets.UTF_8);
    }

    private static String dltKey(String header) {
        // kafka_dlt-original-topic -> topic, kafka_dlt-exception-fqcn -> exception_fqcn
        String k = header.substring("kafka_dlt-".length());
        if (k.startsWith("original-"))
            k = k.substring("original-".length());
        return k.replace('-', '_');
    }

    /* The DLT headers of one record, decoded as a Spring @DltHandler reads
     * what DeadLetterPublishingRecoverer wrote: the last header of each name. */
    private static Map<String, Object> decodeDlt(Headers hs, List<String> errors) {
        Map<String, Object> d = new LinkedHashMap<>();
        for (String name : DLT_STRING_HEADERS) {
            Header h = hs.lastHeader(name);
            if (h != null)
                d.put(dltKey(name), utf8(h.value()));
        }
        Header p = hs.lastHeader(KafkaHeaders.DLT_ORIGINAL_PARTITION);
        if (p != null) {
            if (p.value() == null || p.value().length != Integer.BYTES)
                errors.add(KafkaHeaders.DLT_ORIGINAL_PARTITION + " is " + (p.value() == null ? "null" : p.value().length + " bytes") + ", not 4");
            else
                d.put("partition", ByteBuffer.wrap(p.value()).getInt());
        }
        for (String name : new String[] {KafkaHeaders.DLT_ORIGINAL_OFFSET, KafkaHeaders.DLT_ORIGINAL_TIMESTAMP}) {
            Header h = hs.lastHeader(name);
            if (h == null)
                continue;
            if (h.value() == null || h.value().length != Long.BYTES)
                errors.add(name + " is " + (h.value() == null ? "null" : h.value().length + " bytes") + ", not 8");
            else
                d.put(dltKey(name), ByteBuffer.wrap(h.value()).getLong());
        }
        Object tt = d.get("timestamp_type");
        if (tt != null) {
            try {
                TimestampType.forName((String) tt);
            } catch (RuntimeException e) {
                errors.add("timestamp type " + tt + " is not a TimestampType name");
            }
        }
        for (Header h : hs) {
            if (h.key().startsWith("kafka_dlt-")) {
                int n = 0;
                for (Header x : hs.headers(h.key()))
                    n++;
                if (n > 1 && !errors.contains(h.key() + " appears " + n + " times"))
                    errors.add(h.key() + " appears " + n + " times");
            }
        }
        return d;
    }

    private KafkaConsumer<byte[], byte[]> bytesConsumer(String bootstrap) {
        Properties p = props(Map.of());
        p.put("bootstrap.servers", bootstrap);
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.CLIENT_ID_CONFIG, "eosproxy-it-java-dlt");
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        return new KafkaConsumer<>(p);
    }

    private static List<Object> headerList(Headers hs, boolean dlt) {
        List<Object> out = new ArrayList<>();
        for (Header h : hs)
            if (dlt || !h.key().startsWith("kafka_dlt-"))
                out.add(Arrays.asList(h.key(), hex(h.value())));
        return out;
    }

    private void dltRead(Map<String, Object> out) throws Exception {
        String topic = get("topic", null);
        String ref = get("reference-bootstrap", "");
        long deadline = System.currentTimeMillis() + getInt("timeout-ms", 60000);
        List<Map<String, Object>> records = new ArrayList<>();
        List<ConsumerRecord<byte[], byte[]>> raw = new ArrayList<>();
        out.put("records", records);
        try (KafkaConsumer<byte[], byte[]> c = bytesConsumer(get("bootstrap", null))) {
            List<TopicPartition> tps = new ArrayList<>();
            for (PartitionInfo pi : c.partitionsFor(topic, Duration.ofSeconds(30)))
                tps.add(new TopicPartition(topic, pi.partition()));
            c.assign(tps);
            c.seekToBeginning(tps);
            Map<TopicPartition, Long> end = c.endOffsets(tps, Duration.ofSeconds(30));
            while (true) {
                boolean done = true;
                for (TopicPartition tp : tps)
                    if (c.position(tp, Duration.ofSeconds(30)) < end.get(tp))
                        done = false;
                if (done)
                    break;
                if (System.currentTimeMillis() > deadline)
                    throw new IllegalStateException("timed out before the end offsets " + end);
                for (ConsumerRecord<byte[], byte[]> r : c.poll(Duration.ofMillis(200)))
                    raw.add(r);
            }
        }
        for (ConsumerRecord<byte[], byte[]> r : raw) {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("partition", r.partition());
            m.put("offset", r.offset());
            m.put("key", utf8(r.key()));
            m.put("value", utf8(r.value()));
            m.put("key_hex", hex(r.key()));
            m.put("value_hex", hex(r.value()));
            m.put("timestamp", r.timestamp());
            m.put("timestamp_type", r.timestampType().toString());
            m.put("headers", headerList(r.headers(), true));
            List<String> errors = new ArrayList<>();
            m.put("dlt", decodeDlt(r.headers(), errors));
            m.put("dlt_errors", errors);
            records.add(m);
        }
        if (ref.isEmpty())
            return;
        try (KafkaConsumer<byte[], byte[]> o = bytesConsumer(ref)) {
            for (int i = 0; i < raw.size(); i++)
                records.get(i).put("reference", reference(o, raw.get(i), topic, deadline));
        }
    }

    /* What Spring's DeadLetterRecordManager makes of the original record,
     * compared with what the DLQ holds. */
    @SuppressWarnings("unchecked")
    private static Map<String, Object> reference(KafkaConsumer<byte[], byte[]> o,
                                                 ConsumerRecord<byte[], byte[]> dl, String dlq,
                                                 long deadline) throws Exception {
        Map<String, Object> res = new LinkedHashMap<>();
        Map<String, Object> d = decodeDlt(dl.headers(), new ArrayList<>());
        if (!(d.get("topic") instanceof String) || !(d.get("partition") instanceof Integer) ||
            !(d.get("offset") instanceof Long)) {
            res.put("error", "no original topic/partition/offset to look up");
            return res;
        }
        TopicPartition tp = new TopicPartition((String) d.get("topic"), (Integer) d.get("partition"));
        long offset = (Long) d.get("offset");
        o.assign(List.of(tp));
        o.seek(tp, offset);
        ConsumerRecord<byte[], byte[]> orig = null;
        while (orig == null && System.currentTimeMillis() < deadline) {
            for (ConsumerRecord<byte[], byte[]> r : o.poll(Duration.ofMillis(200))) {
                if (r.offset() == offset && orig == null)
                    orig = r;
            }
            if (orig == null && o.position(tp) > offset)
                break;
        }
        if (orig == null) {
            res.put("error", "original " + tp + "@" + offset + " not found");
            return res;
        }
        DeadLetterRecordManager mgr = new DeadLetterRecordManager();
        org.apache.kafka.clients.producer.ProducerRecord<byte[], byte[]> spring =
            mgr.enrichHeadersAndCreateProducerRecord(orig, new RuntimeException("reference"),
                                                     new TopicPartition(dlq, -1));
        for (String name : new String[] {KafkaHeaders.DLT_ORIGINAL_TOPIC, KafkaHeaders.DLT_ORIGINAL_PARTITION,
                                         KafkaHeaders.DLT_ORIGINAL_OFFSET, KafkaHeaders.DLT_ORIGINAL_TIMESTAMP,
                                         KafkaHeaders.DLT_ORIGINAL_TIMESTAMP_TYPE}) {
            Header want = spring.headers().lastHeader(name);
            Header got = dl.headers().lastHeader(name);
            boolean same = want != null && got != null && Arrays.equals(want.value(), got.value());
            res.put(name, same);
            if (!same)
                res.put(name + ":spring", want == null ? null : hex(want.value()));
        }
        res.put("key", Arrays.equals(orig.key(), dl.key()));
        res.put("value", Arrays.equals(orig.value(), dl.value()));
        res.put("timestamp", orig.timestamp() == dl.timestamp());
        List<Object> oh = headerList(orig.headers(), false);
        List<Object> dh = headerList(dl.headers(), false);
        res.put("headers", oh.equals(dh));
        if (!oh.equals(dh))
            res.put("headers:original", oh);
        res.put("original_timestamp", orig.timestamp());
        res.put("original_timestamp_type", orig.timestampType().toString());
        return res;
    }

    // ---------------------------------------------------------------- spring-dlt-publish

    private void springDltPublish(Map<String, Object> out) throws Exception {
        TopicPartition tp = new TopicPartition(get("topic", null), getInt("partition", 0));
        long offset = Long.parseLong(get("offset", null));
        String dlt = get("dlt", null);
        long deadline = System.currentTimeMillis() + getInt("timeout-ms", 60000);
        ConsumerRecord<byte[], byte[]> orig = null;
        try (KafkaConsumer<byte[], byte[]> c = bytesConsumer(get("bootstrap", null))) {
            c.assign(List.of(tp));
            c.seek(tp, offset);
            while (orig == null) {
                if (System.currentTimeMillis() > deadline)
                    throw new IllegalStateException("record " + tp + "@" + offset + " not read");
                for (ConsumerRecord<byte[], byte[]> r : c.poll(Duration.ofMillis(200)))
                    if (r.offset() == offset && orig == null)
                        orig = r;
            }
        }
        Map<String, Object> pc = new HashMap<>();
        pc.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, get("bootstrap", null));
        pc.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class);
        pc.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class);
        DefaultKafkaProducerFactory<byte[], byte[]> pf = new DefaultKafkaProducerFactory<>(pc);
        try {
            KafkaTemplate<byte[], byte[]> template = new KafkaTemplate<>(pf);
            DeadLetterPublishingRecoverer rec =
                new DeadLetterPublishingRecoverer(template, (r, e) -> new TopicPartition(dlt, 0));
            rec.setFailIfSendResultIsError(true);
            rec.setWaitForSendResultTimeout(Duration.ofSeconds(30));
            Exception cause = new IllegalStateException(get("message", "spring reference"));
            String group = get("group", "");
            Exception e = group.isEmpty() ? cause
                : new ListenerExecutionFailedException("listener failed", group, cause);
            rec.accept(orig, null, e);
            template.flush();
            out.put("published", true);
        } finally {
            pf.destroy();
        }
    }

    // ---------------------------------------------------------------- process-loop

    private static void progress(String line) {
        System.out.println(line);
        System.out.flush();
    }

    private static String partitionList(Collection<TopicPartition> parts) {
        StringBuilder b = new StringBuilder();
        for (TopicPartition tp : parts)
            b.append(b.length() > 0 ? "," : "").append(tp.partition());
        return b.length() == 0 ? "-" : b.toString();
    }

    private void processLoop(Map<String, Object> out) throws Exception {
        String in = get("in", null);
        String outTopic = get("out", null);
        long maxRecords = Long.parseLong(get("max-records", "0"));
        int commitDelay = getInt("commit-delay-ms", 0);
        int idleMs = getInt("idle-ms", 60000);
        boolean autoCommit = Boolean.parseBoolean(get("auto-commit", "false"));
        long deadline = System.currentTimeMillis() + getInt("timeout-ms", 300000);
        out.put("outcome", "timeout");
        out.put("exit_code", 0);
        long[] counts = new long[3]; // processed, committed, commit failures
        Map<String, Object> cx = new HashMap<>();
        cx.put(ConsumerConfig.GROUP_ID_CONFIG, get("group", null));
        cx.put(ConsumerConfig.CLIENT_ID_CONFIG, "eosproxy-it-java-loop");
        cx.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, "classic");
        cx.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, getInt("session-timeout-ms", 6000));
        cx.put(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, 1000);
        cx.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, getInt("max-poll-records", 20));
        cx.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, Boolean.toString(autoCommit));
        if (autoCommit)
            cx.put(ConsumerConfig.AUTO_COMMIT_INTERVAL_MS_CONFIG, 200);
        String instance = get("instance-id", "");
        if (!instance.isEmpty())
            cx.put(ConsumerConfig.GROUP_INSTANCE_ID_CONFIG, instance);
        Map<String, Object> px = new HashMap<>();
        px.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "false");
        px.put(ProducerConfig.ACKS_CONFIG, "all");
        px.put(ProducerConfig.CLIENT_ID_CONFIG, "eosproxy-it-java-loop");
        String outcome = "error";
        try (KafkaProducer<String, String> p = producer(px);
             KafkaConsumer<String, String> c = consumer(cx)) {
            int outParts = p.partitionsFor(outTopic).size();
            List<TopicPartition> all = new ArrayList<>();
            for (PartitionInfo pi : c.partitionsFor(in, Duration.ofSeconds(30)))
                all.add(new TopicPartition(in, pi.partition()));
            Map<TopicPartition, Long> end = c.endOffsets(all, Duration.ofSeconds(30));
            c.subscribe(List.of(in), new ConsumerRebalanceListener() {
                public void onPartitionsRevoked(Collection<TopicPartition> parts) {
                    progress("revoked " + partitionList(parts));
                }

                public void onPartitionsAssigned(Collection<TopicPartition> parts) {
                    progress("assigned " + partitionList(parts));
                }

                public void onPartitionsLost(Collection<TopicPartition> parts) {
                    progress("lost " + partitionList(parts));
                }
            });
            progress("start");
            long lastRecord = System.currentTimeMillis();
            long lastCheck = 0;
            while (true) {
                long now = System.currentTimeMillis();
                if (now > deadline) {
                    outcome = "timeout";
                    break;
                }
                ConsumerRecords<String, String> rs = c.poll(Duration.ofMillis(200));
                if (rs.isEmpty()) {
                    now = System.currentTimeMillis();
                    if (now - lastRecord > idleMs) {
                        outcome = "idle";
                        break;
                    }
                    if (now - lastCheck >= 500) {
                        lastCheck = now;
                        boolean done = true;
                        Map<TopicPartition, OffsetAndMetadata> committed =
                            c.committed(new HashSet<>(all), Duration.ofSeconds(30));
                        for (TopicPartition tp : all) {
                            OffsetAndMetadata om = committed.get(tp);
                            if ((om == null ? 0 : om.offset()) < end.get(tp))
                                done = false;
                        }
                        if (done) {
                            outcome = "done";
                            break;
                        }
                    }
                    continue;
                }
                lastRecord = System.currentTimeMillis();
                progress("polled " + rs.count());
                List<Future<RecordMetadata>> sent = new ArrayList<>();
                for (ConsumerRecord<String, String> r : rs)
                    sent.add(p.send(new ProducerRecord<>(outTopic, r.partition() % outParts, r.key(),
                                                         r.partition() + "/" + r.offset())));
                progress("sent " + sent.size());
                p.flush();
                for (Future<RecordMetadata> f : sent)
                    f.get(); // a failed send: the application fails (exit 5)
                counts[0] += sent.size();
                progress("flushed " + sent.size() + " " + counts[0]);
                if (commitDelay > 0)
                    Thread.sleep(commitDelay);
                if (!autoCommit) {
                    try {
                        c.commitSync();
                        counts[1] += rs.count();
                        progress("committed " + rs.count() + " " + counts[1]);
                    } catch (org.apache.kafka.common.errors.WakeupException |
                             org.apache.kafka.common.errors.InterruptException e) {
                        throw e;
                    } catch (org.apache.kafka.common.KafkaException e) {
                        counts[2]++;
                        progress("commit-failed " + e.getClass().getSimpleName() + " " +
                                 String.valueOf(e.getMessage()).replace('\n', ' '));
                    }
                }
                if (maxRecords > 0 && (autoCommit ? counts[0] : counts[1]) >= maxRecords) {
                    outcome = "max";
                    break;
                }
            }
        } finally {
            out.put("outcome", outcome);
            out.put("processed", counts[0]);
            out.put("committed", counts[1]);
            out.put("commit_failures", counts[2]);
            progress("end " + outcome);
        }
    }
}
