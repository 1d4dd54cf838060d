"""What every layer shares, and nothing else: the host (``host``: CPU, ISA flags, fingerprint),
tensor specs with random inputs (``specs``), latency statistics with the one percentile
definition (``stats``), paired timing (``timing``), the stream pool and the threads-per-worker
rule (``streams``), content digests (``hashing``), the precision names (``precisions``), the one
tolerance table (``tolerances``) and the reference check with its NaN/Inf policy (``reference``).
Imports no other layer."""
