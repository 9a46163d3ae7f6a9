"""``birdie serve``: serve checkpoints (or user-module models) over an OpenAI-compatible HTTP API."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import sys

from birdie.harness.endpoint import ServerLimits


def build_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", help="a birdie export directory, served as --name")
    parser.add_argument("--name", default="birdie", help="the model name clients send for --checkpoint (default: birdie)")
    parser.add_argument("--model", nargs=2, action="append", default=[], metavar=("NAME", "ARGS"),
                        help="serve another model: NAME and lm-eval style args, e.g. 'checkpoint=DIR' or "
                             "'module=pkg.mod,tag=T'; repeatable (models load on request, one at a time)")
    parser.add_argument("--trust-checkpoint", dest="trust_checkpoint", action="store_true",
                        help="--checkpoint may be a training checkpoint dir (its DCP .metadata is a pickle, which "
                             "can run code; exports need no trust)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--scoring", choices=("auto", "prefix", "causal"), default="auto",
                        help="whether --checkpoint accepts the prefix_length extension (prefix-LM scoring); auto: how "
                             "it was trained (training.json). Stock OpenAI requests are always causal")
    parser.add_argument("--batch-size", type=int, default=16, help="rows per model call")
    parser.add_argument("--device", default=None, help="torch device for checkpoints (default: cpu)")
    parser.add_argument("--isolate", action="store_true",
                        help="run every model in a child process that a model switch replaces")
    parser.add_argument("--max-body-bytes", type=int, default=ServerLimits.max_body_bytes)
    parser.add_argument("--max-prompts", type=int, default=ServerLimits.max_prompts)
    parser.set_defaults(func=run)


def _models(args: argparse.Namespace) -> dict[str, dict[str, str]]:
    from birdie.harness.adapters import parse_model_args

    models: dict[str, dict[str, str]] = {}
    if args.checkpoint:
        models[args.name] = {"checkpoint": args.checkpoint, "scoring": args.scoring,
                             "batch_size": str(args.batch_size)}
        if args.device:
            models[args.name]["device"] = args.device
        if args.trust_checkpoint:
            models[args.name]["trust_checkpoint"] = "true"
    for name, spec in args.model:
        if name in models:
            raise SystemExit(f"birdie serve: model name {name!r} is given twice")
        models[name] = {"batch_size": str(args.batch_size), **parse_model_args(spec)}
    if not models:
        raise SystemExit("birdie serve: give --checkpoint DIR or at least one --model NAME ARGS")
    return models


def run(args: argparse.Namespace) -> int:
    from birdie.harness.server import make_server

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    limits = ServerLimits(max_body_bytes=args.max_body_bytes, max_prompts=args.max_prompts)
    server = make_server(_models(args), args.host, args.port, limits, isolate=args.isolate)
    try:
        if not ipaddress.ip_address(server.server_address[0]).is_loopback:
            print(f"birdie serve: WARNING: listening on {args.host} without authentication", file=sys.stderr)
    except ValueError:
        pass
    print(f"birdie serve: {', '.join(server.pool.models)} at {server.url}/v1/completions", flush=True)
    problem = server.pool.health()  # loads the first model now and runs its smoke forward pass
    if problem is not None:
        print(f"birdie serve: WARNING: /health reports: {problem}", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
