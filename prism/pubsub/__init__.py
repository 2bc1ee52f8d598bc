"""
The engines behind the C{pubsub} service (L{prism.services.pubsub}).

  - L{prism.pubsub.memory.MemoryEngine}: one process; history in a ring
    buffer per channel, presence in a dict.
  - L{prism.pubsub.redis.RedisEngine}: every publish goes through Redis
    pub/sub, so subscribers on every node receive it; presence in Redis
    hashes with expiry, history in Redis Streams. With
    L{prism.stores.redis}, one of the two modules that import
    C{txredisapi}, imported only when a redis engine is started.

An engine is told by the service which channels and patterns have local
subscribers (C{listen}/C{unlisten}) and calls the service back to deliver
(C{_deliverExact}, C{_deliverPattern}, C{_control}, C{_presenceEvent}).
See C{docs/pubsub.md}.
"""

__all__ = ["memory", "redis", "history"]
