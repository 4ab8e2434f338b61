"""Cost per message of `--where EXPR` with each CEL library on PyPI that amq could use.

The candidates (all three implement Google's Common Expression Language):
- ``common-expression-language`` (module ``cel``): Rust's cel-interpreter through PyO3;
- ``cel-expr-python`` (module ``cel_expr_python``): Google's C++ cel-cpp, through pybind11
  (needs ``protobuf``, which it does not declare);
- ``cel-python`` (module ``celpy``): pure Python, on lark.

For each it prints: the import time (a fresh interpreter, the best of 3: what every `amq
peek --where` pays at start), the compile time of the expression, and the cost per
message of evaluating it over a message's fields (``where.fields``: body, json,
headers, properties, exchange, routing_key, redelivered), the conversion into the
library's values included, for a matching, a non-matching and a missing-field message.
A library that is not installed is skipped (said so). Last, what amq's own ``--where``
costs per message (the fields made from a Delivery, then cel-expr-python). Figures only:
nothing asserted.

Usage: python benchmarks/where_cost.py [--messages N]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

EXPRESSIONS = [
    "headers.kind == 'a'",
    "json.total > 100 && json.customer.startsWith('acme')",
    "routing_key.matches('^orders\\\\.') && !redelivered",
]


def messages() -> list[dict[str, Any]]:
    """The fields of three messages: one that matches every expression, one that matches
    none, one that lacks the fields (no headers, a body that is not JSON)."""
    props = {"content_type": "application/json", "delivery_mode": 2}
    body = '{"total": 150, "customer": "acme corp", "lines": [1, 2, 3]}'
    import json
    return [
        {"body": body, "json": json.loads(body), "headers": {"kind": "a", "n": 5},
         "properties": props, "exchange": "shop", "routing_key": "orders.created",
         "redelivered": False},
        {"body": '{"total": 50, "customer": "bob"}', "json": {"total": 50, "customer": "bob"},
         "headers": {"kind": "b"}, "properties": props, "exchange": "shop",
         "routing_key": "refunds.created", "redelivered": True},
        {"body": "plain text", "headers": {}, "properties": {}, "exchange": "",
         "routing_key": "orders.x", "redelivered": False},
    ]


def rust() -> tuple[Callable[[str], Any], Callable[[Any, dict[str, Any]], Any]]:
    import cel

    def run(program: Any, fields: dict[str, Any]) -> Any:
        try:
            return program.execute(fields)
        except (KeyError, TypeError, ValueError, RuntimeError):
            return None
    return cel.compile, run


def cpp() -> tuple[Callable[[str], Any], Callable[[Any, dict[str, Any]], Any]]:
    from cel_expr_python import cel
    names = ["body", "json", "headers", "properties", "exchange", "routing_key",
             "redelivered"]
    env = cel.NewEnv(variables=dict.fromkeys(names, cel.Type.DYN))

    def run(program: Any, fields: dict[str, Any]) -> Any:
        return program.eval(data=fields).value()
    return env.compile, run


def pure() -> tuple[Callable[[str], Any], Callable[[Any, dict[str, Any]], Any]]:
    import celpy
    env = celpy.Environment()

    def compile_(text: str) -> Any:
        return env.program(env.compile(text))

    def run(program: Any, fields: dict[str, Any]) -> Any:
        try:
            return program.evaluate({k: celpy.json_to_cel(v) for k, v in fields.items()})
        except celpy.CELEvalError:
            return None
    return compile_, run


CANDIDATES = [
    ("common-expression-language", "cel", rust),
    ("cel-expr-python", "cel_expr_python.cel", cpp),
    ("cel-python", "celpy", pure),
]


def import_ms(module: str) -> float:
    best = float("inf")
    for _ in range(3):
        out = subprocess.run(
            [sys.executable, "-c", f"import time; t=time.perf_counter(); import {module}; "
             "print(time.perf_counter()-t)"], capture_output=True, text=True, check=True)
        best = min(best, float(out.stdout))
    return best * 1000


def measure(name: str, module: str, make: Callable[[], Any], n: int) -> None:
    try:
        compile_, run = make()
    except ImportError as err:
        print(f"{name:28} not installed ({err})")
        return
    print(f"{name:28} import {import_ms(module):6.1f} ms")
    fields = messages()
    for text in EXPRESSIONS:
        t0 = time.perf_counter()
        program = compile_(text)
        compile_us = (time.perf_counter() - t0) * 1e6
        results = [run(program, f) for f in fields]
        t0 = time.perf_counter()
        for i in range(n):
            run(program, fields[i % 3])
        per = (time.perf_counter() - t0) / n * 1e6
        print(f"    {text:58} compile {compile_us:8.0f} us, {per:7.1f} us/message "
              f"({1e6 / per:9,.0f} msg/s)  results {results}")


def amq_where(n: int) -> None:
    """What amq pays per message: ``where.fields`` of a Delivery (its JSON form, the body
    parsed) and the evaluation, as ``peek``/``tap --where`` run it."""
    from amqcli.amqp.model import Delivery, Properties
    from amqcli.where import Where
    deliveries = [Delivery(0, f["body"].encode(), Properties(headers=f["headers"] or None),
                           f["exchange"], f["routing_key"], f["redelivered"])
                  for f in messages()]
    print("amq --where (where.Where.matches on a Delivery, cel-expr-python)")
    for text in EXPRESSIONS:
        where = Where(text)
        t0 = time.perf_counter()
        for i in range(n):
            where.matches(deliveries[i % 3])
        per = (time.perf_counter() - t0) / n * 1e6
        print(f"    {text:58} {per:7.1f} us/message ({1e6 / per:9,.0f} msg/s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=30000)
    args = parser.parse_args()
    for name, module, make in CANDIDATES:
        n = args.messages if name != "cel-python" else max(300, args.messages // 30)
        measure(name, module, make, n)
    amq_where(args.messages)


if __name__ == "__main__":
    main()
