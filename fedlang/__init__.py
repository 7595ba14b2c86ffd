"""fedlang: a declarative language and compiler for federated-learning experiments on TFF."""

__version__ = "0.1.0"
