"""The built-in local broker: RabbitMQ's model over one SQLite file shared by processes.

``engine.Broker`` is the entry point. Nothing here imports the CLI, rich or pika.
"""
