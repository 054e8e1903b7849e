#!/usr/bin/env python3
"""A loopback HTTP proxy for tests: GET requests go to knockd on 127.0.0.1:UPSTREAM with
X-Forwarded-For: ADDR, what an HTTPS reverse proxy in front of knockd adds (knockd, with
METHOD_TO_GET_CLIENT_IP=2, believes it from loopback). The answer goes back as it came, status
and body. Lets `knockd --knock`, which cannot add that header, knock for a documentation
address while all traffic stays on loopback (knockd never opens a loopback address).

usage: xff-proxy.py UPSTREAM_PORT ADDR   (prints "proxy listening on PORT", serves until killed)
"""
import http.client
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

UPSTREAM, ADDR = int(sys.argv[1]), sys.argv[2]


class Proxy(BaseHTTPRequestHandler):
    def do_GET(self):
        c = http.client.HTTPConnection("127.0.0.1", UPSTREAM, timeout=30)
        c.request("GET", self.path, headers={"X-Forwarded-For": ADDR})
        r = c.getresponse()
        body = r.read()
        c.close()
        self.send_response(r.status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        sys.stderr.write("xff-proxy: " + fmt % args + "\n")


httpd = ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
print("proxy listening on %d" % httpd.server_address[1], flush=True)
httpd.serve_forever()
