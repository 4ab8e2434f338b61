"""RabbitMQ's queue and exchange features, on both brokers: TTL, dead letters, length
limits, priorities, alternate exchanges, exchange-to-exchange bindings, CC/BCC, internal
and auto-delete exchanges, x-expires, queue types, and the routing explainer."""

import time

import pytest


def _dead_letter_setup(amq, name, **queue_flags):
    dlx, dead, work = name("dlx"), name("dead"), name("work")
    amq("declare", "exchange", dlx, "--type", "fanout")
    amq("declare", "queue", dead)
    amq("bind", dlx, dead)
    args = ["declare", "queue", work, "--dlx", dlx]
    for flag, value in queue_flags.items():
        args += [f"--{flag.replace('_', '-')}", str(value)]
    amq(*args)
    return dlx, dead, work


def _wait_count(amq, q, n):
    return amq.wait_for(lambda: (i := amq.queue(q)) and i["messages"] == n and i,
                        what=f"{n} messages in {q}")


# --- TTL ----------------------------------------------------------------------------

def test_queue_ttl_expires_messages(amq, name):
    q = name()
    amq("declare", "queue", q, "--ttl", "200")
    amq("send", q, "short-lived")
    assert amq.queue(q)["messages"] in (0, 1)
    time.sleep(0.4)
    _wait_count(amq, q, 0)
    amq("receive", q, "--timeout", "0.3", expect=9)


def test_lower_of_queue_ttl_and_expiration_wins(amq, name):
    q = name()
    amq("declare", "queue", q, "--ttl", "60000")
    amq("send", q, "soon gone", "-p", "expiration=150")
    amq("send", q, "stays")
    time.sleep(0.4)
    assert amq("receive", q, "--count", "1").lines == ["stays"]
    amq("receive", q, "--timeout", "0.3", expect=9)


def test_expired_message_is_dead_lettered_with_x_death(amq, name):
    _dlx, dead, work = _dead_letter_setup(amq, name, ttl=100)
    amq("send", work, "expire me", "-H", "k=v", "-p", "expiration=50")
    _wait_count(amq, dead, 1)
    [m] = amq("receive", dead, "--count", "1", "--format", "json").json_lines()
    assert m["body"] == "expire me" and m["routing_key"] == work
    assert "expiration" not in m["properties"]
    h = m["headers"]
    assert h["k"] == "v"
    [death] = h["x-death"]
    assert {k: v for k, v in death.items() if k != "time"} == {
        "count": 1, "reason": "expired", "queue": work, "exchange": "",
        "routing-keys": [work], "original-expiration": "50"}
    assert abs(death["time"]["$timestamp"] - time.time()) < 30
    assert h["x-first-death-queue"] == work and h["x-first-death-reason"] == "expired"
    assert h["x-first-death-exchange"] == ""


def test_dead_letter_routing_key_replaces_the_key(amq, name):
    dlx, dead = name("dlx"), name("dead")
    work = name("work")
    amq("declare", "exchange", dlx, "--type", "direct")
    amq("declare", "queue", dead)
    amq("bind", dlx, dead, "-k", "expired-things")
    amq("declare", "queue", work, "--ttl", "50", "--dlx", dlx, "--dlrk", "expired-things")
    amq("send", work, "m")
    _wait_count(amq, dead, 1)
    [m] = amq("receive", dead, "--count", "1", "--format", "json").json_lines()
    assert m["routing_key"] == "expired-things"
    assert m["headers"]["x-death"][0]["routing-keys"] == [work]


def test_missing_dead_letter_exchange_drops_silently(amq, name):
    q = name()
    amq("declare", "queue", q, "--ttl", "50", "--dlx", name("nowhere"))
    amq("send", q, "m")
    time.sleep(0.3)
    _wait_count(amq, q, 0)


def test_dead_letter_cycle_without_rejection_is_dropped(amq, name):
    dlx, q = name("dlx"), name()
    amq("declare", "exchange", dlx, "--type", "fanout")
    amq("declare", "queue", q, "--ttl", "50", "--dlx", dlx)
    amq("bind", dlx, q)  # expired messages would come straight back: a cycle
    amq("send", q, "m")
    time.sleep(0.4)
    _wait_count(amq, q, 0)


# --- length limits --------------------------------------------------------------------

def test_max_length_drops_the_head(amq, name):
    q = name()
    amq("declare", "queue", q, "--max-length", "2")
    amq("send", q, "--lines", input="a\nb\nc\nd\n")
    assert amq("receive", q, "--count", "2").lines == ["c", "d"]
    amq("receive", q, "--timeout", "0.2", expect=9)


def test_max_length_dead_letters_what_it_drops(amq, name):
    _dlx, dead, work = _dead_letter_setup(amq, name, max_length=1)
    amq("send", work, "--lines", input="first\nsecond\n")
    _wait_count(amq, dead, 1)
    [m] = amq("receive", dead, "--count", "1", "--format", "json").json_lines()
    assert m["body"] == "first" and m["headers"]["x-death"][0]["reason"] == "maxlen"
    assert amq("receive", work, "--count", "1").lines == ["second"]


def test_max_length_bytes(amq, name):
    q = name()
    amq("declare", "queue", q, "--max-length-bytes", "5")
    amq("send", q, "--lines", input="aa\nbb\ncc\n")
    assert amq("receive", q, "--count", "2").lines == ["bb", "cc"]


def test_reject_publish_nacks_a_confirming_sender(amq, name):
    x, full, other = name("x"), name("full"), name("other")
    amq("declare", "exchange", x, "--type", "fanout")
    amq("declare", "queue", full, "--max-length", "1", "--overflow", "reject-publish")
    amq("declare", "queue", other)
    amq("bind", x, full)
    amq("bind", x, other)
    amq("send", "-e", x, "", "one", "--confirm")
    r = amq("send", "-e", x, "", "two", "--confirm", expect=10)
    assert "refused 1 of 1" in r.stderr
    assert amq("receive", full, "--count", "1").lines == ["one"]
    assert amq("receive", other, "--count", "2").lines == ["one", "two"]  # still delivered


def test_reject_publish_dlx_dead_letters_the_refused(amq, name):
    _dlx, dead, work = _dead_letter_setup(amq, name, max_length=1,
                                          overflow="reject-publish-dlx")
    amq("send", work, "--lines", "--confirm", input="kept\nrefused\n", expect=10)
    _wait_count(amq, dead, 1)
    [m] = amq("receive", dead, "--count", "1", "--format", "json").json_lines()
    assert m["body"] == "refused" and m["headers"]["x-death"][0]["reason"] == "maxlen"
    assert amq("receive", work, "--count", "1").lines == ["kept"]


# --- priorities -----------------------------------------------------------------------

def test_priority_queue_delivers_highest_first(amq, name):
    q = name()
    amq("declare", "queue", q, "--max-priority", "5")
    for body, prio in (("low", "1"), ("none", None), ("high", "5"), ("above-max", "9"),
                       ("mid", "3")):
        args = ["send", q, body] + (["-p", f"priority={prio}"] if prio else [])
        amq(*args)
    assert amq("receive", q, "--count", "5").lines == ["high", "above-max", "mid", "low",
                                                        "none"]


def test_requeued_messages_keep_their_place(amq, name):
    q = name()
    amq("send", q, "--lines", input="1\n2\n3\n")
    amq("receive", q, "--count", "2", "--requeue")
    got = amq("receive", q, "--count", "3", "--format", "json").json_lines()
    assert [m["body"] for m in got] == ["1", "2", "3"]
    assert [m["redelivered"] for m in got] == [True, True, False]


# --- exchanges --------------------------------------------------------------------------

def test_alternate_exchange_takes_unroutable_messages(amq, name):
    x, alt, q_alt, q_main = name("x"), name("alt"), name("unrouted"), name("main")
    amq("declare", "exchange", alt, "--type", "fanout")
    amq("declare", "exchange", x, "--type", "direct", "--alternate-exchange", alt)
    amq("declare", "queue", q_alt)
    amq("declare", "queue", q_main)
    amq("bind", alt, q_alt)
    amq("bind", x, q_main, "-k", "known")
    amq("send", "-e", x, "known", "routed")
    amq("send", "-e", x, "unknown", "to the AE")  # routed via the AE: not unroutable
    assert amq("receive", q_main, "--count", "1").lines == ["routed"]
    assert amq("receive", q_alt, "--count", "1").lines == ["to the AE"]
    assert amq.queue(q_alt)["messages"] == 0


def test_exchange_to_exchange_bindings_give_one_copy_per_queue(amq, name):
    src, mid, q = name("src"), name("mid"), name()
    amq("declare", "exchange", src, "--type", "topic")
    amq("declare", "exchange", mid, "--type", "fanout")
    amq("declare", "queue", q)
    amq("bind", src, mid, "-k", "a.#", "--to-exchange")
    amq("bind", mid, q)
    amq("bind", src, q, "-k", "a.b")  # a second path to the same queue
    amq("send", "-e", src, "a.b", "once")
    assert amq("receive", q, "--count", "1").lines == ["once"]
    amq("receive", q, "--timeout", "0.3", expect=9)
    amq("send", "-e", src, "a.c", "via mid")
    assert amq("receive", q, "--count", "1").lines == ["via mid"]
    amq("unbind", src, mid, "-k", "a.#", "--to-exchange")
    amq("send", "-e", src, "a.c", "nowhere", expect=7)


def test_cc_and_bcc_add_routing_keys_and_bcc_is_hidden(amq, name):
    x, q1, q2, q3 = name("x"), name("one"), name("two"), name("three")
    amq("declare", "exchange", x, "--type", "direct")
    for q, key in ((q1, "k1"), (q2, "k2"), (q3, "k3")):
        amq("declare", "queue", q)
        amq("bind", x, q, "-k", key)
    amq("send", "-e", x, "k1", "m", "-H", 'CC:=["k2"]', "-H", 'BCC:=["k3"]')
    for q in (q1, q2, q3):
        [m] = amq("receive", q, "--count", "1", "--format", "json").json_lines()
        assert m["headers"].get("CC") == ["k2"] and "BCC" not in m["headers"]
        assert m["routing_key"] == "k1"


def test_internal_exchange_refuses_publishers_but_not_exchanges(amq, name):
    front, inner, q = name("front"), name("inner"), name()
    amq("declare", "exchange", inner, "--type", "fanout", "--internal")
    amq("declare", "exchange", front, "--type", "fanout")
    amq("declare", "queue", q)
    amq("bind", inner, q)
    amq("bind", front, inner, "--to-exchange")
    r = amq("send", "-e", inner, "", "direct", expect=5)
    assert "internal exchange" in r.stderr
    amq("send", "-e", front, "", "through")
    assert amq("receive", q, "--count", "1").lines == ["through"]


def test_auto_delete_exchange_goes_with_its_last_binding(amq, name):
    x, q = name("x"), name()
    amq("declare", "exchange", x, "--type", "fanout", "--auto-delete")
    amq("declare", "queue", q)
    amq("bind", x, q)
    assert x in _exchanges(amq)
    amq("unbind", x, q)
    amq.wait_for(lambda: x not in _exchanges(amq), what="the auto-delete exchange gone")


def test_auto_delete_exchange_never_bound_stays(amq, name):
    x = name("x")
    amq("declare", "exchange", x, "--type", "fanout", "--auto-delete")
    assert x in _exchanges(amq)


def _exchanges(amq):
    return [x["name"] for x in amq("list", "exchanges", "-F", "json").json_lines()[0]]


@pytest.mark.parametrize("mode,headers,routed", [
    ("all-with-x", ["x-tag=t", "k=v"], True),
    ("all-with-x", ["k=v"], False),
    ("any-with-x", ["x-tag=t"], True),
    ("all", ["k=v"], True),  # x- binding arguments are ignored by all/any
])
def test_headers_match_with_x(amq, name, mode, headers, routed):
    x, q = name("h"), name()
    amq("declare", "exchange", x, "--type", "headers")
    amq("declare", "queue", q)
    amq("bind", x, q, "--header", "x-tag=t", "--header", "k=v", "--match", mode)
    args = ["send", "-e", x, "", "m"]
    for h in headers:
        args += ["-H", h]
    amq(*args, expect=0 if routed else 7)


# --- queue lifetime and types -------------------------------------------------------

def test_unused_queue_expires(amq, name):
    q = name()
    amq("declare", "queue", q, "--expires", "300")
    # --no-declare: on a busy machine the queue may be gone already (exit 7), and a send
    # that declared it again would make a plain queue that never expires
    assert amq("send", q, "lost with the queue", "--no-declare", expect=None).code in (0, 7)
    amq.wait_for(lambda: q not in amq.queue_names(), what="the queue to expire")


def test_a_queue_listed_all_along_still_expires(amq, name):
    """Listing must not renew an unused queue's x-expires lease (on RabbitMQ any operation
    on the queue does, a passive declare included, so a listing that asked each queue for
    its counts kept it alive for as long as it ran)."""
    q = name()
    amq("declare", "queue", q, "--expires", "1500")
    deadline = time.monotonic() + 20
    while q in amq.queue_names():  # `amq list queues`, again and again
        assert time.monotonic() < deadline, "the queue did not expire while being listed"
        time.sleep(0.2)


def test_quorum_queue_rules(amq, name):
    amq("declare", "queue", name(), "--type", "quorum", "--durable")
    r = amq("declare", "queue", name(), "--type", "quorum", expect=4)
    assert "non-durable" in r.stderr
    r = amq("declare", "queue", name(), "--type", "quorum", "--durable", "--exclusive",
            expect=4)
    assert "exclusive" in r.stderr


def test_integer_widths_are_equivalent_on_redeclare(amq, name):
    q = name()
    amq("declare", "queue", q, "--max-length", "5")
    amq("declare", "queue", q, "--arg", "x-max-length:=5")
    amq("declare", "queue", q, "--max-length", "6", expect=4)


# --- the routing explainer ---------------------------------------------------------

def test_route_explains_hops_and_queues(amq, name):
    x, alt, q, q_alt = name("x"), name("alt"), name(), name("alt")
    amq("declare", "exchange", alt, "--type", "fanout")
    amq("declare", "exchange", x, "--type", "topic", "--alternate-exchange", alt)
    amq("declare", "queue", q)
    amq("declare", "queue", q_alt)
    amq("bind", x, q, "-k", "a.*")
    amq("bind", alt, q_alt)
    out = amq("route", x, "a.b").out
    assert f"matches key 'a.*' -> queue '{q}'" in out and q_alt not in out
    out = amq("route", x, "z").out
    assert f"alternate exchange '{alt}'" in out and f"'{q_alt}'" in out
    r = amq("route", "amq.direct", "nothing-bound", expect=7)
    assert "dropped" in r.out
    data = amq("route", x, "a.b", "--format", "json").json_lines()[0]
    assert data["queues"] == [q]
    amq("route", name("nox"), "k", expect=3)
    assert amq.queue(q)["messages"] == 0  # nothing was published


# --- rejection and the retry loop -------------------------------------------------------

def test_rejected_messages_are_dead_lettered_and_deaths_aggregate(amq, name):
    """The classic retry loop: work -> (reject) -> retry queue -> (expire) -> work."""
    work_x, retry_x, work, retry = name("work-x"), name("retry-x"), name("work"), name("retry")
    amq("declare", "exchange", work_x, "--type", "fanout")
    amq("declare", "exchange", retry_x, "--type", "fanout")
    amq("declare", "queue", work, "--dlx", retry_x)
    amq("declare", "queue", retry, "--ttl", "100", "--dlx", work_x)
    amq("bind", work_x, work)
    amq("bind", retry_x, retry)
    amq("send", "-e", work_x, "job", "payload")
    amq("receive", work, "--exec", "cat >/dev/null; exit 1", "--on-failure", "reject",
        "--count", "2", timeout=60, expect=12)
    [m] = amq("receive", work, "--count", "1", "--format", "json", timeout=60).json_lines()
    assert m["body"] == "payload" and m["exchange"] == work_x
    deaths = [{k: d[k] for k in ("queue", "reason", "count", "exchange", "routing-keys")}
              for d in m["headers"]["x-death"]]
    assert deaths == [
        {"queue": retry, "reason": "expired", "count": 2, "exchange": retry_x,
         "routing-keys": ["job"]},
        {"queue": work, "reason": "rejected", "count": 2, "exchange": work_x,
         "routing-keys": ["job"]},
    ]
    assert m["headers"]["x-first-death-queue"] == work
    assert m["headers"]["x-first-death-reason"] == "rejected"
