"""amq: a command-line toolkit and interactive shell for AMQP 0-9-1 messaging."""

__version__ = "0.1.0"
