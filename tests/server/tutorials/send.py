#!/usr/bin/env python
"""Tutorial 1, "Hello World!": send one message."""
import pika
from common import name, parameters

connection = pika.BlockingConnection(parameters())
channel = connection.channel()

channel.queue_declare(queue=name('hello'))

channel.basic_publish(exchange='', routing_key=name('hello'), body='Hello World!')
print(" [x] Sent 'Hello World!'")
connection.close()
