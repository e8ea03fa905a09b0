#!/usr/bin/env python3
"""Implicit-TLS FTP peer for Quantrac tests: pyftpdlib 2.2 on 127.0.0.1 speaking TLS from the first byte
(the old "port 990" FTPS), for targets with tls = "implicit".

Usage:
    ftps_implicit_server.py --port PORT --root DIR --user U --password P --certfile CERT.pem [--keyfile KEY.pem]

  * PORT 0 picks a free port. Prints exactly one line "READY <port>" on stdout once listening.
  * The TLS handshake comes first, then the 220 banner; TLS stays required on control and data
    (PBSZ 0 / PROT P), as with ftp_server.py --certfile.
  * Sessions and STOR / RNFR / RNTO are logged to stderr. SIGTERM / SIGINT exit at once (status 0).
"""

import argparse
import logging
import os
import signal
import sys

# Foundation's Process starts children with SIGTERM/SIGINT blocked: unblock first.
signal.pthread_sigmask(signal.SIG_SETMASK, [])


def _exit_now(signum, _frame):
    try:
        sys.stderr.write(f"ftps_implicit_server: signal {signum}, exiting\n")
        sys.stderr.flush()
    finally:
        os._exit(0)


signal.signal(signal.SIGTERM, _exit_now)
signal.signal(signal.SIGINT, _exit_now)

from pyftpdlib.authorizers import DummyAuthorizer  # noqa: E402
from pyftpdlib.handlers import FTPHandler, TLS_FTPHandler  # noqa: E402
from pyftpdlib.servers import FTPServer  # noqa: E402


class ImplicitTLSHandler(TLS_FTPHandler):
    log_cmds_list = list(TLS_FTPHandler.log_cmds_list) + ["STOR", "APPE", "STOU", "RETR"]

    def handle(self):
        # No plain-text banner: start the TLS handshake at once, greet once it is established.
        self.secure_connection(self.ssl_context)

    def handle_ssl_established(self):
        FTPHandler.handle(self)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--root", required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--certfile", required=True)
    parser.add_argument("--keyfile")
    args = parser.parse_args()

    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="ftps_implicit_server %(asctime)s %(message)s")
    os.makedirs(args.root, exist_ok=True)
    authorizer = DummyAuthorizer()
    authorizer.add_user(args.user, args.password, os.path.abspath(args.root), perm="elradfmwMT")

    handler = ImplicitTLSHandler
    handler.certfile = args.certfile
    handler.keyfile = args.keyfile
    handler.tls_control_required = True
    handler.tls_data_required = True
    handler.authorizer = authorizer
    handler.banner = "quantrac test implicit ftps ready"
    handler.passive_ports = None
    handler.timeout = 60
    handler.auth_failed_timeout = 0.1

    server = FTPServer(("127.0.0.1", args.port), handler)
    sys.stdout.write(f"READY {server.socket.getsockname()[1]}\n")
    sys.stdout.flush()
    server.serve_forever(timeout=0.5, handle_exit=True)


if __name__ == "__main__":
    try:
        main()
    except Exception as exc:  # pylint: disable=broad-except
        sys.stderr.write(f"ftps_implicit_server: {type(exc).__name__}: {exc}\n")
        sys.stderr.flush()
        sys.exit(2)
