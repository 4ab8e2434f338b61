"""RabbitMQ's management HTTP API, for what AMQP cannot ask: lists of queues, exchanges
and bindings.

Its URL is derived from the AMQP URL (same host and credentials; port 15672, or 15671
with https for ``amqps://``) unless ``AMQ_MANAGEMENT_URL`` gives it. With several hosts,
it is the host the AMQP connection reached.
"""

from __future__ import annotations

import base64
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from typing import Any

from .. import errors
from ..amqp.model import (
    Binding,
    DestinationType,
    Exchange,
    ExchangeType,
    Queue,
    QueueStats,
    VHostInfo,
)
from ..config import BrokerURL, mask_password

ENV_MANAGEMENT_URL = "AMQ_MANAGEMENT_URL"
TIMEOUT = 10.0

# A policy's keys, as the queue and exchange arguments they stand for.
POLICY_ARGUMENTS = {
    "alternate-exchange": "alternate-exchange",
    "dead-letter-exchange": "x-dead-letter-exchange",
    "dead-letter-routing-key": "x-dead-letter-routing-key",
    "message-ttl": "x-message-ttl",
    "expires": "x-expires",
    "max-length": "x-max-length",
    "max-length-bytes": "x-max-length-bytes",
    "overflow": "x-overflow",
    "delivery-limit": "x-delivery-limit",
    "queue-mode": "x-queue-mode",
}
APPLIES_TO = {"queue": ("all", "queues", "classic_queues", "quorum_queues"),
              "exchange": ("all", "exchanges")}


class ManagementAPI:
    def __init__(self, base: str, user: str, password: str, vhost: str) -> None:
        self.base = base.rstrip("/")
        self.vhost = vhost
        self.user = user
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        self.headers = {"Authorization": f"Basic {token}", "Accept": "application/json"}

    @classmethod
    def for_url(cls, url: BrokerURL, host_url: str | None = None) -> ManagementAPI:
        """The API of the host ``host_url`` (one of ``url.hosts``: the one connected to;
        by default the first)."""
        amqp = urllib.parse.urlsplit(host_url or (url.hosts or (url.url,))[0])
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

    def get(self, what: str, name: str | None = None, per_vhost: bool = True) -> Any:
        """``/api/WHAT/VHOST``, decoded (``/api/WHAT/VHOST/NAME`` with a name; ``/api/WHAT``
        without ``per_vhost``)."""
        vhost = urllib.parse.quote(self.vhost, safe="")
        url = f"{self.base}/api/{what}/{vhost}" if per_vhost else f"{self.base}/api/{what}"
        if name is not None:
            url += "/" + urllib.parse.quote(name, safe="")
        return self._call("GET", url)

    def _call(self, method: str, url: str, body: Any = None,
              not_found: errors.AmqError | None = None) -> Any:
        """One request; the decoded answer (None when it has no body). A 404 raises
        ``not_found`` (by default: the URL's vhost is not found)."""
        data = None if body is None else json.dumps(body).encode()
        headers = dict(self.headers)
        if data is not None:
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
                raw = response.read()
                return json.loads(raw) if raw else None
        except urllib.error.HTTPError as err:
            if err.code == 401:
                raise errors.AccessRefused(
                    f"the management API at {mask_password(self.base)} refused the login") \
                    from None
            if err.code == 404:
                raise not_found or errors.NotAllowed(f"vhost '{self.vhost}' not found") \
                    from None
            if err.code == 403:
                raise errors.AccessRefused(
                    f"the management API at {self.base} refused {method} {url[len(self.base):]}"
                    f" for user '{self.user}' (it needs the administrator tag)") from None
            raise errors.BrokerUnreachable(
                f"the management API at {self.base} answered {err.code} {err.reason}") from None
        except (urllib.error.URLError, OSError, ValueError) as err:
            reason = getattr(err, "reason", err)
            raise errors.BrokerUnreachable(
                f"listing needs RabbitMQ's management API, not reachable at {self.base} "
                f"({reason})",
                hint="enable it with `rabbitmq-plugins enable rabbitmq_management`, or set "
                     f"{ENV_MANAGEMENT_URL}") from None

    # --- vhosts -----------------------------------------------------------------------

    def vhosts(self) -> list[VHostInfo]:
        found = self.get("vhosts", per_vhost=False)
        return [VHostInfo(str(v.get("name")), str(v.get("description") or ""),
                          tuple(str(t) for t in (v.get("tags") or ())))
                for v in (found if isinstance(found, list) else [])]

    def _vhost_url(self, name: str) -> str:
        return f"{self.base}/api/vhosts/{urllib.parse.quote(name, safe='')}"

    def add_vhost(self, name: str, description: str, tags: Sequence[str], grant: bool) -> bool:
        if any(v.name == name for v in self.vhosts()):
            return False
        self._call("PUT", self._vhost_url(name),
                   {"description": description, "tags": ",".join(tags)})
        if grant:
            self._call("PUT", f"{self.base}/api/permissions/"
                       f"{urllib.parse.quote(name, safe='')}/"
                       f"{urllib.parse.quote(self.user, safe='')}",
                       {"configure": ".*", "write": ".*", "read": ".*"})
        return True

    def delete_vhost(self, name: str) -> None:
        self._call("DELETE", self._vhost_url(name),
                   not_found=errors.NotFound(f"no vhost '{name}'"))

    def overview(self) -> dict[str, Any]:
        """The node that answers (``node``), ``cluster_name``, ``rabbitmq_version``,
        ``erlang_version``, ..."""
        data = self.get("overview", per_vhost=False)
        return data if isinstance(data, dict) else {}

    def nodes(self) -> list[dict[str, Any]]:
        """The cluster's nodes: ``name``, ``running``, ``type``, ..."""
        data = self.get("nodes", per_vhost=False)
        return data if isinstance(data, list) else []

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
            rows.append((_queue(q), leased))
        return rows

    def queue_stats(self) -> list[QueueStats]:
        """Each queue with its counts, its counters of messages published into it and
        delivered (``deliver_get``) and their rates, as the API reports them."""
        out = []
        for q in sorted(self.get("queues"), key=lambda q: q["name"]):
            stats = q.get("message_stats") or {}

            def rate(key: str, stats: dict[str, Any] = stats) -> float:
                return float((stats.get(f"{key}_details") or {}).get("rate") or 0.0)
            out.append(QueueStats(_queue(q), int(stats.get("publish") or 0),
                                  int(stats.get("deliver_get") or 0), rate("publish"),
                                  rate("deliver_get")))
        return out

    def delivery_limited(self, queue: str) -> bool:
        """Whether ``queue`` is a quorum queue that counts returns towards a delivery
        limit: ``x-delivery-limit`` by argument or policy, or any quorum queue from
        RabbitMQ 4.0 on (its default limit is 20)."""
        q = self.get("queues", queue)
        if q.get("type") != "quorum":
            return False
        policy = q.get("effective_policy_definition") or {}
        if "x-delivery-limit" in (q.get("arguments") or {}) or (
                isinstance(policy, dict) and "delivery-limit" in policy):
            return True
        version = str(self.get("overview", per_vhost=False).get("rabbitmq_version", "3"))
        return not version.startswith(("2.", "3."))

    def policy_arguments(self) -> dict[tuple[str, str], dict[str, Any]]:
        """What the vhost's policies give each queue and exchange, by ``(kind, name)``, as
        arguments (``x-dead-letter-exchange``, ``alternate-exchange``, ...). A queue's
        ``effective_policy_definition`` (operator policies merged in) where the API has
        it already (it comes with the statistics, seconds late), else the policy that
        applies as RabbitMQ picks it: the highest priority of those whose pattern
        matches the name."""
        import re
        policies = sorted(self.get("policies"), key=lambda p: -int(p.get("priority") or 0))

        def matching(kind: str, name: str) -> dict[str, Any]:
            for p in policies:
                if p.get("apply-to", "all") in APPLIES_TO[kind]:
                    try:
                        if re.search(p.get("pattern", ""), name):
                            return p.get("definition") or {}
                    except re.error:
                        continue  # a pattern Python's re does not read (PCRE's own)
            return {}
        out: dict[tuple[str, str], dict[str, Any]] = {}
        rows = [("queue", q) for q in self.get("queues")] if policies else []
        rows += [("exchange", x) for x in self.get("exchanges")] if policies else []
        for kind, row in rows:
            definition = row.get("effective_policy_definition") or \
                matching(kind, row["name"])
            if not isinstance(definition, dict):
                continue
            args = {POLICY_ARGUMENTS[k]: v for k, v in definition.items()
                    if k in POLICY_ARGUMENTS and (k == "alternate-exchange") ==
                    (kind == "exchange")}
            if args:
                out[(kind, row["name"])] = args
        return out

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


def _queue(q: dict[str, Any]) -> Queue:
    """A queue of the API's list, with its counts as the API has them. A stream's
    consumers are in ``consumer_details`` seconds before its stats count them; its
    messages (the log's length) come with its stats, if at all."""
    stream = q.get("type") == "stream"
    consumers = max(int(q.get("consumers") or 0), len(q.get("consumer_details") or []))
    ready = q.get("messages") if stream else q.get("messages_ready")
    return Queue(q["name"], bool(q.get("durable")), bool(q.get("exclusive")),
                 bool(q.get("auto_delete")), q.get("arguments") or {}, int(ready or 0),
                 int(q.get("messages_unacknowledged") or 0), consumers)
