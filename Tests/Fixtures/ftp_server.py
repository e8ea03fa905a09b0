#!/usr/bin/env python3
"""FTP peer for Quantrac tests: a pyftpdlib 2.2 server on 127.0.0.1.

Usage:
    ftp_server.py --port PORT --root DIR --user U --password P [--no-rename]
                  [--certfile CERT.pem [--keyfile KEY.pem]]

  * PORT 0 picks a free port. Prints exactly one line "READY <port>" on stdout once the
    server is listening.
  * The user has full permissions ("elradfmwMT"); with --no-rename the same user lacks
    'f', so RNFR and RNTO are refused with "550 Not enough privileges.".
  * Passive data connections listen on 127.0.0.1 (the control connection's address),
    on ports chosen by the OS.
  * --certfile: explicit FTPS (AUTH TLS) with TLS required on control and data.
  * A wrong password is answered with 530 after 0.1 s (pyftpdlib's default is 3 s).
  * STOR / RNFR / RNTO (and DELE, MKD, ...) are logged to stderr, one line each.
  * SIGTERM / SIGINT exit at once (status 0).
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
        sys.stderr.write(f"ftp_server: signal {signum}, exiting\n")
        sys.stderr.flush()
    finally:
        os._exit(0)


signal.signal(signal.SIGTERM, _exit_now)
signal.signal(signal.SIGINT, _exit_now)

from pyftpdlib.authorizers import DummyAuthorizer  # noqa: E402
from pyftpdlib.handlers import FTPHandler  # noqa: E402
from pyftpdlib.servers import FTPServer  # noqa: E402

FULL_PERMISSIONS = "elradfmwMT"


def make_handler(base):
    class LoggingHandler(base):
        # STOR/APPE/STOU are logged when the command is answered (and again, with the
        # size, by pyftpdlib's transfer log when the upload completes).
        log_cmds_list = list(base.log_cmds_list) + ["STOR", "APPE", "STOU", "RETR"]

    return LoggingHandler


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--root", required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--no-rename", action="store_true", help="refuse RNFR/RNTO (550)")
    parser.add_argument("--certfile", help="require explicit TLS (AUTH TLS) with this certificate")
    parser.add_argument("--keyfile", help="private key for --certfile (default: inside certfile)")
    args = parser.parse_args()

    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format="ftp_server %(asctime)s %(message)s",
    )

    if not os.path.isdir(args.root):
        raise ValueError(f"root {args.root!r} is not a directory")

    perm = FULL_PERMISSIONS.replace("f", "") if args.no_rename else FULL_PERMISSIONS
    authorizer = DummyAuthorizer()
    authorizer.add_user(args.user, args.password, os.path.abspath(args.root), perm=perm)

    if args.certfile:
        from pyftpdlib.handlers import TLS_FTPHandler  # pylint: disable=import-outside-toplevel

        handler = make_handler(TLS_FTPHandler)
        handler.certfile = args.certfile
        handler.keyfile = args.keyfile
        handler.tls_control_required = True
        handler.tls_data_required = True
    else:
        handler = make_handler(FTPHandler)
    handler.authorizer = authorizer
    handler.banner = "quantrac test ftp ready"
    handler.passive_ports = None  # OS-chosen ports, bound to 127.0.0.1
    handler.masquerade_address = None
    handler.timeout = 60
    handler.auth_failed_timeout = 0.1  # pyftpdlib waits 3 s before answering 530

    server = FTPServer(("127.0.0.1", args.port), handler)  # binds and listens
    port = server.socket.getsockname()[1]
    sys.stdout.write(f"READY {port}\n")
    sys.stdout.flush()
    server.serve_forever(timeout=0.5, handle_exit=True)


if __name__ == "__main__":
    try:
        main()
    except Exception as exc:  # pylint: disable=broad-except
        sys.stderr.write(f"ftp_server: {type(exc).__name__}: {exc}\n")
        sys.stderr.flush()
        sys.exit(2)
