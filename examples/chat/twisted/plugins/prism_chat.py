# The chat demo's service plugin, so that a configuration file can name it
# (examples/chat/prism.toml: [[services]] name = "chat"). Found by twistd and
# `prism` when examples/chat is on PYTHONPATH (scripts/demo toml sets it);
# like every dropin it only names its implementation.
from prism.plugin import ServicePlugin

chat = ServicePlugin("chat", "examples.chat.chat_service.ChatService", "The chat demo's room: pushes every message to everyone.")
