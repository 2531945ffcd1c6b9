"""`bertserve bench`: a load generator and the references it compares a server against.

    texts.py     which texts to replay (ChnSentiCorp dev, any TSV/text file, the median review)
    loadgen.py   closed-loop clients over raw HTTP/1.1 keep-alive connections: p50/p90/p99, req/s
    engine.py    the engine's own limit: the same batches through ExportedModel in-process, no HTTP
    peers.py     other servers on the same model, started as subprocesses (naive FastAPI, Ray Serve)
    report.py    the results table, the targets with PASS/MISS, and the JSON file

Run it with `bertserve bench --help`; docs/benchmarks.md holds measured results.
"""
