"""What publishing one message to the broker costs: ``python -m bench.broker_publish``.

Every pipeline step publishes its next task and three or four task events (Flower's), so
this is on every order's path. Measured against kombu's own Redis transport in the same
run, alternating rounds: ``workers.redis_broker`` keeps one Redis client per connection
pool where kombu's builds one per command. CPU time of this process (the publisher), per
message, best and median of the rounds.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid

from kombu import Connection, Queue

from bench.common import redis_db
from workers.redis_broker import TRANSPORT


def cpu_us_a_publish(url: str, transport: str | None, messages: int) -> float:
    queue = Queue(f"bench-publish-{uuid.uuid4().hex}")
    with Connection(url, transport=transport) as connection:
        producer = connection.Producer(serializer="json")
        producer.publish({"n": -1}, routing_key=queue.name, declare=[queue])
        started = time.process_time()
        for n in range(messages):
            producer.publish({"order_id": f"ord_{n:022d}"}, routing_key=queue.name)
        used = time.process_time() - started
        producer.channel.client.delete(queue.name)
    return 1e6 * used / messages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379", help="a server")
    parser.add_argument("--messages", type=int, default=2000, help="a round (2000)")
    parser.add_argument("--rounds", type=int, default=5, help="of each transport (5)")
    args = parser.parse_args()
    figures: dict[str, list[float]] = {"kombu": [], "orderflow": []}
    with redis_db(args.redis_url) as url:
        for _ in range(args.rounds):
            figures["kombu"].append(cpu_us_a_publish(url, None, args.messages))
            figures["orderflow"].append(cpu_us_a_publish(url, TRANSPORT, args.messages))
    print(f"CPU µs a message published ({args.rounds} rounds of {args.messages}):")
    for name, values in figures.items():
        print(f"  {name:>9}: best {min(values):5.0f}  median {statistics.median(values):5.0f}")
    ratio = statistics.median(figures["orderflow"]) / statistics.median(figures["kombu"])
    print(f"  workers.redis_broker / kombu's transport: {ratio:.2f}x (medians)")


if __name__ == "__main__":
    main()
