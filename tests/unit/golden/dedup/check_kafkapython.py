# Reads the batches of this directory with kafka-python 2.0.2's own code
# (CRC check on), then runs its Fetcher on a Fetch v4 partition holding one
# batch at fetch offset 1000 and prints what it delivers and where it fetches
# next. Run: /usr/bin/python3 check_kafkapython.py
import glob, os
from unittest import mock
from kafka.consumer.fetcher import Fetcher, CompletedFetch
from kafka.consumer.subscription_state import SubscriptionState
from kafka.metrics import Metrics
from kafka.record.memory_records import MemoryRecords
from kafka.structs import TopicPartition

D = os.path.dirname(os.path.abspath(__file__))
tp = TopicPartition('t', 0)

def fetcher_view(data, fetch_offset=1000):
    subs = SubscriptionState()
    subs.assign_from_user([tp])
    subs.seek(tp, fetch_offset)
    client = mock.MagicMock()
    client.in_flight_request_count.return_value = 0
    client.cluster.leader_for_partition.return_value = 0
    f = Fetcher(client, subs, Metrics(), check_crcs=True)
    f._completed_fetches.append(
        CompletedFetch(tp, fetch_offset, 4, [0, 1010, 1010, None, data], mock.MagicMock()))
    try:
        recs, _ = f.fetched_records()
        out = [(r.offset, r.key) for r in recs.get(tp, [])]
    except Exception as e:
        out = 'EXC %r' % e
    f._create_fetch_requests()
    return out, subs.assignment[tp].position

for path in sorted(glob.glob(os.path.join(D, '*.bin'))):
    data = open(path, 'rb').read()
    b = MemoryRecords(data).next_batch()
    crc = b.validate_crc()
    offs = [r.offset for r in b]
    out, pos = fetcher_view(data)
    print('%-14s crc %s control %-5s offsets %s | poll: %s next fetch %d'
          % (os.path.basename(path), crc, b.is_control_batch, offs, out, pos))
