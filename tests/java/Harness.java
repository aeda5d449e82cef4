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
// Any command also takes --prop key=value (repeatable): extra client
// properties. ERR is {"type": exception class, "message": text} of the
// innermost cause.

import com.fasterxml.jackson.databind.ObjectMapper;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Collections;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
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
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

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
            System.err.println("usage: Harness produce|consume|group|cluster --key value ...");
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
                default -> throw new IllegalArgumentException("unknown command " + argv[0]);
            }
        } catch (IllegalArgumentException e) {
            System.err.println("Harness: " + e.getMessage());
            System.exit(2);
        } catch (Exception e) {
            out.put("error", describe(e));
        }
        System.out.println(new ObjectMapper().writeValueAsString(out));
        System.out.flush();
        // Client threads left behind by a failure must not keep the JVM up.
        System.exit(0);
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
}
