"""Does a broker carry out Kafka transactions, as a transactional sink would need?

Offsets sent to a committed transaction must become the group's committed offsets, and an
aborted transaction's records must be hidden from read_committed readers. Prints what it saw and
TRANSACTIONS WORK or TRANSACTIONS NOT CARRIED OUT.

    apt-get install python3-confluent-kafka      # Debian's client, on the system python
    /usr/bin/python3 tests/dev/probes/kafka_transactions.py BOOTSTRAP SOURCE_PREFIX DEST_PREFIX

e.g. against the development broker (`make dev-broker` prints its bootstrap servers):
    /usr/bin/python3 tests/dev/probes/kafka_transactions.py 127.0.0.1:PORT probe.in probe.out
Each run uses topics of its own (the prefixes with a random suffix, one partition each)."""
import sys, time, uuid
from confluent_kafka import Producer, Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

bootstrap = sys.argv[1]
run = uuid.uuid4().hex[:6]
src, dst = sys.argv[2] + "." + run, sys.argv[3] + "." + run
group = "probe-" + uuid.uuid4().hex[:8]

# Created first where the broker takes CreateTopics; the development broker does not, and
# creates them on first use instead.
admin = AdminClient({"bootstrap.servers": bootstrap})
for name, future in admin.create_topics([NewTopic(t, 1, 1) for t in (src, dst)]).items():
    try:
        future.result(20)
    except Exception as error:
        print("topic", name, "not created by request:", error)

p = Producer({"bootstrap.servers": bootstrap})
for i in range(10):
    p.produce(src, key=str(i), value=f"in-{i}", partition=0)
p.flush(10)

c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
              "enable.auto.commit": False, "isolation.level": "read_committed"})
c.assign([TopicPartition(src, 0, 0)])
read = []
deadline = time.time() + 20
while len(read) < 10 and time.time() < deadline:
    m = c.poll(1.0)
    if m is not None and not m.error():
        read.append(m)
print("read", len(read), "input records")

t = Producer({"bootstrap.servers": bootstrap, "transactional.id": "probe-" + uuid.uuid4().hex[:8]})
t.init_transactions(20)
t.begin_transaction()
for i in range(5):
    t.produce(dst, value=f"committed-{i}", partition=0)
t.send_offsets_to_transaction([TopicPartition(src, 0, 5)], c.consumer_group_metadata(), 20)
t.commit_transaction(20)
t.begin_transaction()
for i in range(5):
    t.produce(dst, value=f"aborted-{i}", partition=0)
t.send_offsets_to_transaction([TopicPartition(src, 0, 10)], c.consumer_group_metadata(), 20)
t.flush(20)  # the aborted records are on the log before the abort
t.abort_transaction(20)

committed = c.committed([TopicPartition(src, 0)], 10)
print("group offset after a committed (5) and an aborted (10) transaction:", committed[0].offset, "(want 5)")

def read_all(level):
    r = Consumer({"bootstrap.servers": bootstrap, "group.id": "r-" + uuid.uuid4().hex[:8],
                  "auto.offset.reset": "earliest", "isolation.level": level, "enable.auto.commit": False})
    r.assign([TopicPartition(dst, 0, 0)])
    out, end = [], time.time() + 10
    while time.time() < end:
        m = r.poll(0.5)
        if m is not None and not m.error():
            out.append(m.value().decode())
    r.close()
    return out

ru = read_all("read_uncommitted")
print("read_uncommitted sees", len(ru), "records (want 10: both transactions' records are on the log)")
rc = read_all("read_committed")
print("read_committed sees", len(rc), "records:", sorted(set(v.split("-")[0] for v in rc)), "(want 5, committed only)")
ok = committed[0].offset == 5 and len(ru) == 10 and len(rc) == 5 and all(v.startswith("committed") for v in rc)
print("TRANSACTIONS WORK" if ok else "TRANSACTIONS NOT CARRIED OUT")
