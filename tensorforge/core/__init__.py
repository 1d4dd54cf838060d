"""What every layer shares and nothing else: the host's CPU (``host``). Imports no other layer."""
