"""The seeds' group consumer, with confluent-kafka (librdkafka).

Usage:
  group_consumer.py BOOTSTRAP produce TOPIC COUNT
      An idempotent producer sends COUNT records ("r0", "r1", ...); prints {"acked": COUNT}.
  group_consumer.py BOOTSTRAP consume TOPIC GROUP IDLE_S [WORK_S]
      group.id GROUP, enable.auto.commit=false, auto.offset.reset=earliest, and a synchronous
      commit after each record (processing it takes WORK_S seconds, default 0). Prints one line per record processed: [partition, offset, value],
      flushed before the record is committed. Ends after IDLE_S seconds without a record once it
      has an assignment.
"""
import json
import sys
import time

from confluent_kafka import Consumer, KafkaException, Producer


def produce(bootstrap, topic, count):
    p = Producer({'bootstrap.servers': bootstrap, 'enable.idempotence': True, 'acks': 'all', 'linger.ms': 5})
    acked = [0]

    def on_delivery(err, msg):
        if err is not None:
            raise KafkaException(err)
        acked[0] += 1

    for i in range(count):
        p.produce(topic, key=('k%d' % i).encode(), value=('r%d' % i).encode(), on_delivery=on_delivery)
        p.poll(0)
    p.flush(60)
    print(json.dumps({'acked': acked[0]}))


def consume(bootstrap, topic, group, idle_s, work_s):
    c = Consumer({
        'bootstrap.servers': bootstrap,
        'group.id': group,
        'enable.auto.commit': False,
        'auto.offset.reset': 'earliest',
        'session.timeout.ms': 6000,
    })
    c.subscribe([topic])
    last = time.time()
    assigned = False
    while True:
        msg = c.poll(0.2)
        if msg is None:
            if not assigned and c.assignment():
                # The idle clock starts with the assignment (a rebalance may take a session
                # timeout, while a killed member expires).
                assigned, last = True, time.time()
            if assigned and time.time() - last > idle_s:
                break
            continue
        if msg.error():
            raise KafkaException(msg.error())
        if work_s:
            time.sleep(work_s)
        last = time.time()
        print(json.dumps([msg.partition(), msg.offset(), msg.value().decode()]), flush=True)
        c.commit(message=msg, asynchronous=False)
    c.close()


if __name__ == '__main__':
    bootstrap, mode = sys.argv[1], sys.argv[2]
    if mode == 'produce':
        produce(bootstrap, sys.argv[3], int(sys.argv[4]))
    elif mode == 'consume':
        consume(bootstrap, sys.argv[3], sys.argv[4], float(sys.argv[5]), float(sys.argv[6]) if len(sys.argv) > 6 else 0.0)
    else:
        sys.exit('unknown mode ' + mode)
