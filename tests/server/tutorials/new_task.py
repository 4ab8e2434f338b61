#!/usr/bin/env python
"""Tutorial 2, work queues: send a task (its dots are seconds of work)."""
import sys

import pika
from common import name, parameters

connection = pika.BlockingConnection(parameters())
channel = connection.channel()

channel.queue_declare(queue=name('task_queue'), durable=True)

message = ' '.join(sys.argv[1:]) or "Hello World!"
channel.basic_publish(
    exchange='',
    routing_key=name('task_queue'),
    body=message,
    properties=pika.BasicProperties(
        delivery_mode=pika.DeliveryMode.Persistent
    ))
print(f" [x] Sent {message}")
connection.close()
