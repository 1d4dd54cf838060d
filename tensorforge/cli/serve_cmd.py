"""``tensorforge serve ENGINE… | --repository DIR`` — the KServe v2 inference server (HTTP, gRPC, metrics)."""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from ._fmt import err_console, para

HELP = "serve engines over HTTP and gRPC (KServe v2 / Triton protocol) with dynamic batching and metrics"


def _port(text: str) -> int | None:
    if text.lower() == "off":
        return None
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a port is a number 0..65535 (0 = any free port) or 'off', got {text!r}")
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0..65535, got {port}")
    return port


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help=HELP, description=para(
        "Serve one or more engines to clients over the network, speaking the KServe v2 / Open "
        "Inference Protocol exactly as NVIDIA Triton does, so stock clients (tritonclient, "
        "perf_analyzer, KServe tooling) work unchanged: HTTP/REST with JSON or binary tensors, gRPC, "
        "and Prometheus metrics. Concurrent requests are merged into batches (dynamic batching: "
        "while a batch runs, requests wait up to --max-queue-delay-ms for up to --max-batch-size samples; "
        "a lone request on an idle model goes at once), run on --instances "
        "concurrent copies of the model, and split back so each client gets exactly its own rows. "
        "A full queue answers 503 at once instead of growing. The server listens on 127.0.0.1 "
        "only unless --host says otherwise; SIGTERM or Ctrl-C lets in-flight requests finish first.")
        + "\n\n" + para(
        "Model names: an engine file is served as its file stem (resnet50.tfe → 'resnet50', "
        "version 1). A repository directory holds DIR/<model>/<version>/model.tfe and an optional "
        "DIR/<model>/config.json with per-model settings (same names as the options below, e.g. "
        '{"max_batch_size": 16, "instances": 2}); models there can be loaded and unloaded at run '
        "time through the repository API."),
        epilog="examples:\n"
               "  tensorforge serve resnet50.tfe                       (HTTP :8000, gRPC :8001, metrics :8002)\n"
               "  tensorforge serve a.tfe b.tfe --max-batch-size 16 --max-queue-delay-ms 5 --instances 2\n"
               "  tensorforge serve --repository models/ --http-port 9000 --grpc-port off\n"
               "  tensorforge serve resnet50.tfe --ray --replicas auto  (Ray Serve, local or --address cluster)\n"
               "  curl localhost:8000/v2/models/resnet50               (metadata)\n"
               "  curl localhost:8002/metrics                          (Prometheus)",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("engines", nargs="*", metavar="ENGINE", help="engine files (.tfe) to serve")
    p.add_argument("--repository", metavar="DIR", help="model repository directory (DIR/<model>/<version>/model.tfe)")
    net = p.add_argument_group("network")
    net.add_argument("--host", default="127.0.0.1",
                     help="address to listen on (default: 127.0.0.1, this machine only; 0.0.0.0 = every interface)")
    net.add_argument("--http-port", type=_port, default=8000, help="HTTP port; 0 = any free port, 'off' (default 8000)")
    net.add_argument("--grpc-port", type=_port, default=8001, help="gRPC port; 0 = any free port, 'off' (default 8001)")
    net.add_argument("--metrics-port", type=_port, default=8002,
                     help="Prometheus metrics port; 0 = any free port, 'off' (default 8002)")
    net.add_argument("--auth-token-file", metavar="FILE",
                     help="require 'Authorization: Bearer <token>' (token read from FILE) on every call but health")
    net.add_argument("--max-request-mb", type=float, default=64.0, help="largest request body in MiB (default 64)")
    net.add_argument("--max-inflight-mb", type=float,
                     help="HTTP request body MiB held at once, server-wide; past it 503 (default 8 x --max-request-mb)")
    net.add_argument("--http-impl", choices=("uvicorn", "wire"), default="uvicorn",
                     help="HTTP/1.1 server: uvicorn (default) or wire (our own protocol: reads binary tensor "
                          "bodies without copies; fewer HTTP features)")
    net.add_argument("--event-loop", choices=("auto", "uvloop", "asyncio"), default="auto",
                     help="asyncio event loop of the listeners (default auto: uvloop when installed)")
    net.add_argument("--drain-timeout", type=float, default=30.0,
                     help="seconds in-flight requests get to finish on shutdown (default 30)")
    net.add_argument("--header-timeout", type=float, default=30.0,
                     help="seconds from a request's first byte to the end of its headers, then 408 and close: "
                          "a client trickling headers cannot hold a connection (default 30)")
    net.add_argument("--body-timeout", type=float, default=120.0,
                     help="seconds from the end of the headers to the last body byte, then 408 and close "
                          "(default 120)")
    net.add_argument("--keepalive-timeout", type=float, default=60.0,
                     help="seconds an idle HTTP connection stays open between requests (default 60)")
    net.add_argument("--max-connections", type=int, default=1024,
                     help="open HTTP connections; one more is answered 503 and closed (default 1024)")
    b = p.add_argument_group("batching and instances (defaults for every model; a repository config.json overrides)")
    b.add_argument("--max-batch-size", type=int, default=8, help="most samples per batch (default 8)")
    b.add_argument("--max-queue-delay-ms", type=float, default=10.0,
                   help="how long a batch may wait to fill, in ms; 0 = send at once (default 10)")
    b.add_argument("--preferred-batch-sizes", default="", help="comma-separated sizes sent at once when reached")
    b.add_argument("--strict-queue-delay", action="store_true",
                   help="hold even a lone request on an idle model for the whole --max-queue-delay-ms (Triton's "
                        "rule); by default it is sent at once, and the delay applies only while batches run")
    b.add_argument("--max-queue-size", type=int, default=256, help="queued requests before 503 (default 256)")
    b.add_argument("--instances", type=int, default=1, help="concurrent copies of each model (default 1)")
    b.add_argument("--instance-kind", choices=("thread", "process"), default="thread",
                   help="instances as threads of this process (default) or as child processes")
    b.add_argument("--threads-per-instance", type=int,
                   help="ONNX Runtime threads per instance (default: cores ÷ instances)")
    b.add_argument("--timeout-ms", type=float, help="default per-request queue timeout in ms (default: none)")
    b.add_argument("--priority-levels", type=int, default=1, help="priority levels; requests pick 1 (highest)..N")
    b.add_argument("--slo-ms", type=float,
                   help="latency objective per request, in ms: the batcher grows a batch only while every request in "
                        "it can still finish in time (from the batch-size → compute-time curve measured at load and "
                        "refreshed live), and answers 503 at once to a request that can no longer make it "
                        "(default: none — batches by --max-queue-delay-ms only)")
    r = p.add_argument_group("Ray Serve (scale out; pip install 'tensorforge[scale]')")
    r.add_argument("--ray", action="store_true",
                   help="deploy ENGINE on Ray Serve instead: same KServe v2 HTTP API (at --host/--http-port, on "
                        "Ray Serve's proxy), our batcher with the options above inside every replica; no gRPC or "
                        "metrics port (Ray exports its own metrics)")
    r.add_argument("--address", help="--ray: the Ray cluster to join (host:port or 'auto'); default: a running one, "
                                     "else a new local one on this machine")
    r.add_argument("--replicas", type=_replicas, default=1,
                   help="--ray: copies of the model across the cluster, a number or 'auto' (Ray Serve's "
                        "autoscaler adds replicas when requests in flight per replica pass one full batch per "
                        "instance; 1..4) (default 1)")
    r.add_argument("--proxy-location", choices=("EveryNode", "HeadOnly"), default="EveryNode",
                   help="--ray: where Ray Serve's HTTP proxies run (HeadOnly when several nodes share one "
                        "machine, and so one port) (default EveryNode)")
    p.set_defaults(func=_run)


def _replicas(text: str) -> int | str:
    if text.lower() == "auto":
        return "auto"
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a replica count is a whole number >= 1 or 'auto', got {text!r}")
    if n < 1:
        raise argparse.ArgumentTypeError(f"a replica count is >= 1 (or 'auto'), got {n}")
    return n


def _run(args: argparse.Namespace) -> int:
    from ..api.serve import read_token, serve
    from ..serve import BatcherConfig, ModelConfig, ServerConfig

    token = read_token(args.auth_token_file) if args.auth_token_file else None
    preferred = tuple(int(x) for x in args.preferred_batch_sizes.split(",") if x.strip())
    model_config = ModelConfig(
        batcher=BatcherConfig(max_batch_size=args.max_batch_size, max_queue_delay_ms=args.max_queue_delay_ms,
                              preferred_batch_sizes=preferred, max_queue_size=args.max_queue_size,
                              instances=args.instances, default_timeout_ms=args.timeout_ms,
                              priority_levels=args.priority_levels, idle_dispatch=not args.strict_queue_delay,
                              slo_ms=args.slo_ms),
        instance_kind=args.instance_kind, threads_per_instance=args.threads_per_instance)
    if args.ray:
        return _run_ray(args, model_config)
    if args.address or args.replicas != 1 or args.proxy_location != "EveryNode":
        from ..errors import InputError

        raise InputError("--address, --replicas and --proxy-location are for Ray Serve; add --ray")
    config = ServerConfig(host=args.host, http_port=args.http_port, grpc_port=args.grpc_port,
                          metrics_port=args.metrics_port, auth_token=token,
                          max_request_bytes=int(args.max_request_mb * 2**20),
                          max_inflight_bytes=int(args.max_inflight_mb * 2**20) if args.max_inflight_mb else None,
                          drain_timeout_s=args.drain_timeout,
                          http_impl=args.http_impl, event_loop=args.event_loop,
                          header_timeout_s=args.header_timeout, body_timeout_s=args.body_timeout,
                          keepalive_s=args.keepalive_timeout, max_connections=args.max_connections)
    if args.host not in ("127.0.0.1", "localhost", "::1") and token is None:
        err_console.print(f"[yellow]warning:[/yellow] listening on {args.host} without --auth-token-file: anyone "
                          "who can reach this machine can use and load/unload models")
    server = serve(args.engines, args.repository, config=config, model_config=model_config)
    info = server.describe()
    names = sorted({m["name"] for m in info["models"] if m["state"] == "READY"})
    print(f"serving {len(names)} model(s): {', '.join(names)}")
    for key in ("http", "grpc", "metrics"):
        if info[key]:
            print(f"  {key:8s}{info[key]}")
    print("press Ctrl-C (or send SIGTERM) to stop; in-flight requests finish first", flush=True)
    _wait_for_signal()
    print("stopping: draining in-flight requests…", file=sys.stderr, flush=True)
    server.stop(drain=True)
    print("stopped", flush=True)
    return 0


def _wait_for_signal() -> None:
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        while not stop.wait(0.5):
            pass
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _run_ray(args: argparse.Namespace, model_config: object) -> int:
    from ..api.serve import serve_on_ray
    from ..errors import InputError
    from ..scale.blob import require_ray

    require_ray("serve")                   # one line naming the extra, before anything else
    if args.repository or len(args.engines) != 1:
        raise InputError("--ray deploys one engine file: give exactly one ENGINE (no --repository)")
    if args.http_port is None:
        raise InputError("--ray serves over HTTP: give --http-port a port number")
    where = serve_on_ray(args.engines[0], address=args.address, replicas=args.replicas, http_host=args.host,
                         http_port=args.http_port, proxy_location=args.proxy_location, model_config=model_config)
    print(f"serving 1 model on Ray Serve ({args.replicas} replica(s)): http://{where}", flush=True)
    print("press Ctrl-C (or send SIGTERM) to stop: the application is deleted from the cluster", flush=True)
    from ray import serve as ray_serve

    try:
        _wait_for_signal()
    finally:
        print("stopping: deleting the Ray Serve application…", file=sys.stderr, flush=True)
        ray_serve.delete("tensorforge")
        if not args.address:
            ray_serve.shutdown()
    print("stopped", flush=True)
    return 0
