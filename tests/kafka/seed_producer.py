"""The seed's producer, as written: kafka-python, acks='all', to a topic nobody created.

Usage: seed_producer.py BOOTSTRAP COUNT
Prints one JSON object: {"acks": [[partition, offset], ...]} in send order (event i at index i).
"""
import json
import sys

from kafka import KafkaProducer

bootstrap, count = sys.argv[1], int(sys.argv[2])
producer = KafkaProducer(
    bootstrap_servers=[bootstrap],
    value_serializer=lambda v: json.dumps(v).encode('utf-8'),
    acks='all',
    retries=3,
    batch_size=16384,
    linger_ms=10,
)
futures = []
for i in range(count):
    event = {
        'truck_id': 'truck-%03d' % (i % 120),
        'lat': 40.0 + (i % 1000) / 1000.0,
        'lng': -74.0 - (i % 777) / 1000.0,
        'speed': i % 130,
        'fuel_level': round(1.0 - (i % 100) / 100.0, 2),
        'timestamp': 1_700_000_000_000 + i * 1000,
    }
    futures.append(producer.send('truck-locations', event))
producer.flush()
acks = [[m.partition, m.offset] for m in (f.get(timeout=30) for f in futures)]
producer.close()
print(json.dumps({'acks': acks}))
