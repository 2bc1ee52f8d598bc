# The greeter service for Prism: names its implementation and does nothing else.
from prism.plugin import ServicePlugin

greeter = ServicePlugin("greeter", "greeter.GreeterService", "Greets whoever asks (an external plugin example).")
