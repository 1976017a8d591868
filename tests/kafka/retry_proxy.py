"""Lost Produce responses: a proxy between a kafka-python idempotent producer and the broker cuts
the connection right after the broker answered some Produce requests (the records are in the log;
the producer never hears so), so the producer retries them.

Usage: retry_proxy.py BROKER_HOST:PORT PROXY_PORT COUNT
The broker must advertise PROXY_PORT. Prints {"acks": [[partition, offset], ...], "cuts": n}.
"""
import json
import socket
import struct
import sys
import threading

from kafka import KafkaProducer

broker_host, broker_port = sys.argv[1].rsplit(':', 1)
proxy_port, count = int(sys.argv[2]), int(sys.argv[3])
PRODUCE = 0
state = {'produce_responses': 0, 'cuts': 0}
lock = threading.Lock()


def read_frame(sock):
    head = b''
    while len(head) < 4:
        chunk = sock.recv(4 - len(head))
        if not chunk:
            return None
        head += chunk
    (n,) = struct.unpack('>i', head)
    body = b''
    while len(body) < n:
        chunk = sock.recv(n - len(body))
        if not chunk:
            return None
        body += chunk
    return head + body


def serve(client):
    upstream = socket.create_connection((broker_host, int(broker_port)))
    apis = {}

    def close():
        for s in (client, upstream):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def requests():
        while True:
            frame = read_frame(client)
            if frame is None:
                return close()
            api, _, cid = struct.unpack('>hhi', frame[4:12])
            apis[cid] = api
            upstream.sendall(frame)

    threading.Thread(target=requests, daemon=True).start()
    while True:
        try:
            frame = read_frame(upstream)
        except OSError:
            return close()
        if frame is None:
            return close()
        (cid,) = struct.unpack('>i', frame[4:8])
        if apis.pop(cid, None) == PRODUCE:
            with lock:
                state['produce_responses'] += 1
                cut = state['produce_responses'] % 4 == 2 and state['cuts'] < 5
                if cut:
                    state['cuts'] += 1
            if cut:
                return close()
        try:
            client.sendall(frame)
        except OSError:
            return close()


listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(('127.0.0.1', proxy_port))
listener.listen(16)


def accept():
    while True:
        c, _ = listener.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()


threading.Thread(target=accept, daemon=True).start()

producer = KafkaProducer(
    bootstrap_servers=['127.0.0.1:%d' % proxy_port],
    acks='all',
    enable_idempotence=True,
    retries=20,
    linger_ms=2,
    batch_size=4096,
    request_timeout_ms=5000,
    retry_backoff_ms=50,
)
futures = [producer.send('retried', ('r-%d' % i).encode()) for i in range(count)]
producer.flush()
acks = [[m.partition, m.offset] for m in (f.get(timeout=60) for f in futures)]
producer.close()
print(json.dumps({'acks': acks, 'cuts': state['cuts']}))
