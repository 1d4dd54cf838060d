"""What every layer shares, and nothing else: the host (``host``: CPU, ISA flags, fingerprint) and
tensor specs with random inputs (``specs``). Imports no other layer."""
