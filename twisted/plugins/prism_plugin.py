# The twistd/twist plugin for Prism: names prism.tap and does nothing else.
from twisted.application.service import ServiceMaker

prism = ServiceMaker("Prism", "prism.tap", "Prism realtime (WebSocket) server.", "prism")
