"""`narrate-demo`: narrate a text end to end on this machine and stop everything afterwards.

Brings up the local stack (reusing a Redis that already answers), submits the text through the real
API with the client library, shows live progress, downloads the audio and prints its duration and
real-time factor.
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
from pathlib import Path

from client.api import ApiClient, ApiError
from client.cli import FORMATS, CliError, download_results, read_inputs, wait_with_progress
from devstack.stack import DEV_KEY, REPO, LocalStack, StackError, interrupt_on_signal

DEFAULT_TEXT = REPO / "examples" / "pride-and-prejudice-ch1.txt"


def main(argv: list[str] | None = None) -> int:
    """Console script `narrate-demo`."""
    parser = argparse.ArgumentParser(prog="narrate-demo", description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("file", nargs="?", type=Path, default=DEFAULT_TEXT, help="UTF-8 text (default: %(default)s)")
    parser.add_argument("-o", "--out", type=Path, help="where the audio goes (default: out/<name>.<format>)")
    parser.add_argument("--format", default="mp3", choices=FORMATS)
    parser.add_argument("--voice", help="voice name (the engine's default when omitted)")
    parser.add_argument("--port", type=int, default=8080, help="port of the demo API (default %(default)s)")
    parser.add_argument("--keep-logs", type=Path, help="keep the services' logs in this directory")
    args = parser.parse_args(argv)

    out = args.out or Path("out") / f"{args.file.stem}.{args.format}"
    try:
        inputs = read_inputs(args.file, None)
    except CliError as exc:
        print(f"narrate-demo: {exc.message}", file=sys.stderr)
        return 2

    signal.signal(signal.SIGTERM, interrupt_on_signal)
    with tempfile.TemporaryDirectory(prefix="narrate-demo-") as tmp:
        log_dir = args.keep_logs or Path(tmp) / "logs"
        stack = LocalStack(port=args.port, log_dir=log_dir)
        try:
            with stack, ApiClient(stack.url, DEV_KEY) as client:
                print(f"narrate-demo: stack ready at {stack.url} (logs in {log_dir})", file=sys.stderr)
                job = client.submit(inputs, voice=args.voice, format=args.format)
                print(
                    f"narrate-demo: job {job['id']}, {inputs[0]['id']}: {len(inputs[0]['text'])} chars",
                    file=sys.stderr,
                )
                job = wait_with_progress(client, job, interval=0.5, timeout=None)
                if job["status"] != "succeeded":
                    error = job.get("error") or {}
                    print(f"narrate-demo: job {job['status']}: {error.get('message', '')}", file=sys.stderr)
                    return 1
                [path] = download_results(client, job, out)
                result = job["result"]
                print(f"audio     {path}")
                print(f"duration  {result['duration_seconds']:.1f} s")
                print(f"rtf       {job['rtf']:.3f} (synthesis seconds per audio second)")
                print(f"size      {result['bytes']} bytes, sha256 {result['sha256'][:16]}…")
                return 0
        except KeyboardInterrupt:
            print("narrate-demo: interrupted; everything it started is stopped", file=sys.stderr)
            return 130
        except (StackError, ApiError) as exc:
            print(f"narrate-demo: {exc}", file=sys.stderr)
            return 2


if __name__ == "__main__":
    sys.exit(main())
