"""A nurse-call system stand-in, run as its own process: verifies every webhook with the ``standardwebhooks``
package (the specification's reference implementation, not our code) and logs each delivery as a JSON line.

    python -m tests.support.webhook_receiver --port 8123 --secret whsec_... --log deliveries.jsonl

Answers 204 to a delivery whose signature verifies, 400 otherwise, and 200 to ``GET /health``. Each log line:
``{"webhook_id", "timestamp", "valid", "error", "body"}``.
"""

from __future__ import annotations

import argparse
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from standardwebhooks import Webhook


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--secret", required=True)
    parser.add_argument("--log", type=Path, required=True)
    args = parser.parse_args()
    verifier = Webhook(args.secret)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/health" else 404)
            self.end_headers()

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            entry = {"webhook_id": self.headers.get("webhook-id"), "timestamp": self.headers.get("webhook-timestamp"),
                     "valid": True, "error": None}
            try:
                entry["body"] = verifier.verify(body, dict(self.headers.items()))
            except Exception as exc:  # the package's WebhookVerificationError, or bad JSON
                entry.update(valid=False, error=f"{type(exc).__name__}: {exc}", body=body.decode("utf-8", "replace"))
            with lock, args.log.open("a") as out:
                out.write(json.dumps(entry) + "\n")
            self.send_response(204 if entry["valid"] else 400)
            self.end_headers()

        def log_message(self, *_: object) -> None:
            pass

    ThreadingHTTPServer(("127.0.0.1", args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
