"""bertserve: train, ship and serve BERT text classifiers.

Run `bertserve --help` for the commands (train, evaluate, export, serve, online, predict).
"""

__version__ = "0.1.0"
