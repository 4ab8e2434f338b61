"""RabbitMQ's management HTTP API, for what AMQP cannot ask: lists of queues, exchanges
and bindings.

Its URL is derived from the AMQP URL (same host and credentials; port 15672, or 15671
with https for ``amqps://``) unless ``AMQ_MANAGEMENT_URL`` gives it.
"""

from __future__ import annotations

import base64
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from .. import errors
from ..amqp.model import Binding, DestinationType, Exchange, ExchangeType, Queue
from ..config import BrokerURL, mask_password

ENV_MANAGEMENT_URL = "AMQ_MANAGEMENT_URL"
TIMEOUT = 10.0


class ManagementAPI:
    def __init__(self, base: str, user: str, password: str, vhost: str) -> None:
        self.base = base.rstrip("/")
        self.vhost = vhost
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        self.headers = {"Authorization": f"Basic {token}", "Accept": "application/json"}

    @classmethod
    def for_url(cls, url: BrokerURL) -> ManagementAPI:
        amqp = urllib.parse.urlsplit(url.url)
        user = urllib.parse.unquote(amqp.username or "guest")
        password = urllib.parse.unquote(amqp.password or "guest")
        path = amqp.path[1:] if amqp.path.startswith("/") else amqp.path
        vhost = urllib.parse.unquote(path) if path else "/"
        given = os.environ.get(ENV_MANAGEMENT_URL)
        if given:
            parts = urllib.parse.urlsplit(given)
            if parts.username:
                user = urllib.parse.unquote(parts.username)
                password = urllib.parse.unquote(parts.password or "")
            netloc = parts.hostname or ""
            if parts.port:
                netloc += f":{parts.port}"
            base = urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))
        else:
            scheme, port = ("https", 15671) if url.scheme == "amqps" else ("http", 15672)
            host = amqp.hostname or "localhost"
            if ":" in host:
                host = f"[{host}]"
            base = f"{scheme}://{host}:{port}"
        return cls(base, user, password, vhost)

    def get(self, what: str) -> Any:
        vhost = urllib.parse.quote(self.vhost, safe="")
        url = f"{self.base}/api/{what}/{vhost}"
        request = urllib.request.Request(url, headers=self.headers)
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
                return json.load(response)
        except urllib.error.HTTPError as err:
            if err.code == 401:
                raise errors.AccessRefused(
                    f"the management API at {mask_password(self.base)} refused the login") \
                    from None
            if err.code == 404:
                raise errors.NotAllowed(f"vhost '{self.vhost}' not found") from None
            raise errors.BrokerUnreachable(
                f"the management API at {self.base} answered {err.code} {err.reason}") from None
        except (urllib.error.URLError, OSError, ValueError) as err:
            reason = getattr(err, "reason", err)
            raise errors.BrokerUnreachable(
                f"listing needs RabbitMQ's management API, not reachable at {self.base} "
                f"({reason})",
                hint="enable it with `rabbitmq-plugins enable rabbitmq_management`, or set "
                     f"{ENV_MANAGEMENT_URL}") from None

    def queues(self) -> list[Queue]:
        return [q for q, _ in self.queue_rows()]

    def queue_rows(self) -> list[tuple[Queue, bool]]:
        """Each queue, and whether it has an ``x-expires`` lease (by argument or policy),
        which any AMQP operation on it, a passive declare included, would renew."""
        rows = []
        for q in sorted(self.get("queues"), key=lambda q: q["name"]):
            arguments = q.get("arguments") or {}
            policy = q.get("effective_policy_definition") or {}
            leased = "x-expires" in arguments or (
                isinstance(policy, dict) and "expires" in policy)
            rows.append((Queue(q["name"], bool(q.get("durable")), bool(q.get("exclusive")),
                               bool(q.get("auto_delete")), arguments,
                               int(q.get("messages_ready") or 0),
                               int(q.get("messages_unacknowledged") or 0),
                               int(q.get("consumers") or 0)), leased))
        return rows

    def exchanges(self) -> list[Exchange]:
        out = []
        for x in sorted(self.get("exchanges"), key=lambda x: x["name"]):
            try:
                kind = ExchangeType(x["type"])
            except ValueError:
                continue  # a plugin's type (x-delayed-message, ...): not in our model
            out.append(Exchange(x["name"], kind, bool(x.get("durable")),
                                bool(x.get("auto_delete")), bool(x.get("internal")),
                                x.get("arguments") or {}))
        return out

    def bindings(self) -> list[Binding]:
        rows = self.get("bindings")
        out = [Binding(b["source"], b["destination"], DestinationType(b["destination_type"]),
                       b.get("routing_key", ""), b.get("arguments") or {}) for b in rows]
        default = sorted((b for b in out if b.source == ""), key=lambda b: b.destination)
        rest = sorted((b for b in out if b.source != ""),
                      key=lambda b: (b.source, b.destination_type, b.destination,
                                     b.routing_key))
        return default + rest
