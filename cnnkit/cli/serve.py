"""``cnnkit serve [--host 127.0.0.1] [--port 8000] [--model RUN|NAME|FILE.onnx] [--workers N]
[--runtime torch|onnx]``: the model behind HTTP, with a web page at ``/`` and docs at ``/docs``.

The model is loaded before the server binds, so a wrong ``--model`` is one error line, not a
server that answers 500. With ``--workers N`` each uvicorn worker process loads its own copy.
"""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="serve a model over HTTP: JSON API, heat maps and a web page")
    p.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)"
    )
    p.add_argument("--port", type=int, default=8000, help="TCP port (default: 8000)")
    p.add_argument(
        "--model",
        default="efficientnet_lite0",
        help="zoo model with weights, a 'cnnkit train' run directory, or an exported .onnx file",
    )
    p.add_argument(
        "--runtime", choices=("torch", "onnx"), default="torch", help="inference runtime (default: torch)"
    )
    p.add_argument(
        "--compile",
        action="store_true",
        help="torch runtime: compile the model with torch.compile before serving (7-25 s at start, "
        "then about 1.6x faster answers on a CPU; needs a C++ compiler)",
    )
    p.add_argument(
        "--workers", type=int, default=1, help="server processes, each with its own model (default: 1)"
    )
    p.add_argument("--topk", type=int, default=5, help="classes returned by default (default: 5)")
    p.add_argument(
        "--max-upload-mb", type=float, default=10.0, help="largest accepted upload (default: 10 MB)"
    )
    p.add_argument(
        "--max-pixels",
        type=int,
        default=50_000_000,
        help="largest accepted image, width x height, checked before decoding (default: 50,000,000)",
    )
    p.add_argument("--log-level", default="info", help="uvicorn log level (default: info)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import dataclasses
    import json
    import os

    import uvicorn

    from cnnkit.errors import CnnkitError
    from cnnkit.serve.app import CONFIG_ENV, ServeConfig, create_app

    if args.workers < 1:
        raise CnnkitError(f"--workers must be at least 1, got {args.workers}.")
    if not 0 < args.port < 65536:
        raise CnnkitError(f"--port must be in 1..65535, got {args.port}.")
    if args.max_upload_mb <= 0 or args.max_pixels < 1 or args.topk < 1:
        raise CnnkitError("--max-upload-mb, --max-pixels and --topk must be positive.")
    config = ServeConfig(
        model=args.model,
        runtime=args.runtime,
        compile=args.compile,
        max_upload_mb=args.max_upload_mb,
        max_pixels=args.max_pixels,
        topk=args.topk,
    )
    app = create_app(config)  # loads the model here: errors are one line, before binding
    print(
        f"cnnkit serve: {app.state.service.loaded.name} ({args.runtime}) on http://{args.host}:{args.port}/",
        flush=True,
    )
    if args.workers == 1:
        uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    else:
        exported = app.state.service.loaded.info.get("path")  # export once, not once per worker
        config = dataclasses.replace(config, onnx_file=exported)
        os.environ[CONFIG_ENV] = json.dumps(dataclasses.asdict(config))
        del app
        uvicorn.run(
            "cnnkit.serve.app:app_from_env",
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            log_level=args.log_level,
        )
    return 0
