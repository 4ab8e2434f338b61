#!/usr/bin/env python
"""Tutorial 4, routing: send a log line with a severity."""
import sys

import pika
from common import name, parameters

connection = pika.BlockingConnection(parameters())
channel = connection.channel()

channel.exchange_declare(exchange=name('direct_logs'), exchange_type='direct')

severity = sys.argv[1] if len(sys.argv) > 1 else 'info'
message = ' '.join(sys.argv[2:]) or 'Hello World!'
channel.basic_publish(
    exchange=name('direct_logs'), routing_key=severity, body=message)
print(f" [x] Sent {severity}:{message}")
connection.close()
