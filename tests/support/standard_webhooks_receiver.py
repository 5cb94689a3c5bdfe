"""A webhook receiver that checks every call with the Standard Webhooks
reference library for Python (`pip install standardwebhooks`), independently of
IMAS's own signing code.

    python3 standard_webhooks_receiver.py PORT SECRET

POST /hook: verified (signature, and a timestamp within the library's 5-minute
tolerance) or 401; a verified call whose webhook-id was already processed is a
replay or a repeat: answered 200 and not processed again. GET /state: what it
saw, as JSON.
"""

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

PORT = int(sys.argv[1])
WEBHOOK = Webhook(sys.argv[2])
LOCK = threading.Lock()
STATE = {"processed": [], "duplicates": 0, "rejected": []}
SEEN = set()


class Handler(BaseHTTPRequestHandler):
    def answer(self, status, doc):
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        with LOCK:
            self.answer(200, STATE)

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        headers = {k: v for k, v in self.headers.items()}
        try:
            WEBHOOK.verify(body, headers)
        except (WebhookVerificationError, ValueError) as e:
            with LOCK:
                STATE["rejected"].append(str(e))
            return self.answer(401, {"error": str(e)})
        msg_id = self.headers["webhook-id"]
        with LOCK:
            if msg_id in SEEN:
                STATE["duplicates"] += 1
                return self.answer(200, {"duplicate": msg_id})
            SEEN.add(msg_id)
            STATE["processed"].append(
                {
                    "id": msg_id,
                    "timestamp": self.headers["webhook-timestamp"],
                    "signature": self.headers["webhook-signature"],
                    "body": body.decode(),
                }
            )
        self.answer(200, {"ok": msg_id})

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
