#!/usr/bin/env python
"""Tutorial 5, topics: receive the log lines matching some binding keys."""
import sys

import pika
from common import name, parameters

connection = pika.BlockingConnection(parameters())
channel = connection.channel()

channel.exchange_declare(exchange=name('topic_logs'), exchange_type='topic')

result = channel.queue_declare('', exclusive=True)
queue_name = result.method.queue

binding_keys = sys.argv[1:]
if not binding_keys:
    sys.stderr.write(f"Usage: {sys.argv[0]} [binding_key]...\n")
    sys.exit(1)

for binding_key in binding_keys:
    channel.queue_bind(
        exchange=name('topic_logs'), queue=queue_name, routing_key=binding_key)

print(' [*] Waiting for logs. To exit press CTRL+C')


def callback(ch, method, properties, body):
    print(f" [x] {method.routing_key}:{body}")


channel.basic_consume(
    queue=queue_name, on_message_callback=callback, auto_ack=True)

try:
    channel.start_consuming()
except KeyboardInterrupt:
    print('Interrupted')
