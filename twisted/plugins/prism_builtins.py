# Prism's built-in services, transports, middleware and session stores.
# Each line only names an implementation; nothing is imported until it is used.
from prism.plugin import MiddlewarePlugin, ServicePlugin, SessionStorePlugin, TransportPlugin

echo = ServicePlugin("echo", "prism.services.echo.EchoService", "Send every message back.")
rpc = ServicePlugin("rpc", "prism.services.rpc.RPCService", "Remote procedure calls to Python handlers.")
pubsub = ServicePlugin("pubsub", "prism.services.pubsub.PubSubService", "Publish/subscribe: channels, patterns, presence, history (memory or Redis).")
models = ServicePlugin("models", "prism.services.models.ModelsService", "Shared JSON documents kept in sync with JSON Patch (memory or Redis).")
livereload = ServicePlugin("livereload", "prism.services.livereload.LiveReloadService", "Development: reload or restyle pages when watched files change.")

websocket = TransportPlugin("websocket", "prism.transports.websocket.WebSocketTransport", "Native WebSocket (Autobahn).")
sockjs = TransportPlugin("sockjs", "prism.transports.sockjs.SockJSTransport", "SockJS: WebSocket, streaming and polling fallbacks (sockjs-client).")
loopback = TransportPlugin("loopback", "prism.transports.loopback.LoopbackTransport", "In-process transport for tests and benchmarks.")
engineio = TransportPlugin("engineio", "prism.transports.engineio.EngineIOTransport", "Engine.IO v4: HTTP long-polling and WebSocket.")

logrequests = MiddlewarePlugin("log", "prism.middleware.LogRequests", "Log every incoming request.")

memory = SessionStorePlugin("memory", "prism.sessions.MemorySessionStore", "In-memory sessions with expiry.")
redis = SessionStorePlugin("redis", "prism.stores.redis.RedisSessionStore", "Sessions in Redis, shareable with web apps.")

ratelimit = MiddlewarePlugin("ratelimit", "prism.limits.RateLimit", "Token buckets per connection and per client address.")
maxsize = MiddlewarePlugin("maxsize", "prism.limits.MaxSize", "Refuse messages larger than a limit per service.")
auth = MiddlewarePlugin("auth", "prism.limits.Auth", "Require an authenticated session for named services or RPC methods.")
