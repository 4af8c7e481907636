"""A visit counter: each GET / adds a row to `visits` and answers the count.
Python's standard library and Debian's psycopg2; PostgreSQL is reached on its
Unix socket as the `app` role (peer authentication: the process runs as `app`)."""

import os
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg2

DSN = os.environ.get("DATABASE_DSN", "host=/run/postgresql dbname=app")
PORT = int(os.environ.get("PORT", "8000"))


class Counter(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path != "/":
            self.send_error(404)
            return
        with psycopg2.connect(DSN) as conn, conn.cursor() as cur:
            cur.execute("INSERT INTO visits DEFAULT VALUES")
            cur.execute("SELECT count(*) FROM visits")
            (count,) = cur.fetchone()
        conn.close()
        body = f"visits: {count}\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        sys.stderr.write("web: " + (fmt % args) + "\n")


def main():
    server = ThreadingHTTPServer(("0.0.0.0", PORT), Counter)
    # The init forwards `docker stop` as SIGTERM: finish, then exit 0.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"listening on :{PORT}", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
