#!/usr/bin/env python3
"""Fault-injecting FTP peer for Quantrac tests: ftp_server.py plus faults switched at runtime.

Usage:
    faulty_ftp_server.py --port PORT --root DIR --user U --password P --control FILE [--no-rename]

  * Same READY protocol as ftp_server.py: PORT 0 picks a free port; prints exactly one line
    "READY <port>" on stdout once listening. SIGTERM / SIGINT exit at once (status 0).
  * The behaviour is the mode written in FILE (one word; a missing or empty file means "ok").
    FILE is re-read on every command received, and every 0.1 s by a timer (so a stalled
    transfer resumes, and idle sessions are closed for 530, soon after the mode changes):

      ok     behave like ftp_server.py
      drop   accept STOR (150), receive a few bytes of the data (they stay in the target file,
             i.e. NAME.part when the client publishes by rename), then reset the data and the
             control connections (SO_LINGER 0: the client sees a connection reset)
      550    answer STOR with "550 ... (fault injection)"
      552    answer STOR with "552 ... (fault injection)"
      530    answer PASS with "530 Login incorrect (fault injection)"; sessions logged in
             before are closed (FIN, nothing sent) once idle (no transfer, no command for
             0.3 s), so a client reusing its control connection must log in again, like
             after a server restart with new credentials
      idle421  behave like ok, but close every idle logged-in session (as above) with
             "421 Control connection timed out." (what pyftpdlib, vsftpd ... send at their
             idle timeout), so a cached control connection is never usable
      stall  accept STOR (150) and then neither read the data connection nor answer on the
             control connection until the mode changes; then the transfer resumes normally

  * Besides pyftpdlib's own log (STOR/RNFR/RNTO/... lines, as ftp_server.py), one line per
    event goes to stderr, machine-readable:
        EVENT <unix time, seconds with ms> mode=<mode> <WHAT> [<argument>] [key=value ...]
    WHAT is a command as received (USER, PASS without its argument, CWD, EPSV, STOR, RNFR,
    RNTO, ...), or REFUSED (STOR/PASS refused by the mode), DROP (bytes=N received before the
    reset), STALL, RESUME (a stalled transfer goes on), KICK (an idle logged-in session closed
    in mode 530 or idle421), CLOSED (a control connection ended; stalled=1 if it ended while its
    transfer was stalled, after=SECONDS of stall).
"""

import argparse
import logging
import os
import signal
import socket
import struct
import sys
import time

# Foundation's Process starts children with SIGTERM/SIGINT blocked: unblock first.
signal.pthread_sigmask(signal.SIG_SETMASK, [])


def _exit_now(signum, _frame):
    try:
        sys.stderr.write(f"faulty_ftp_server: signal {signum}, exiting\n")
        sys.stderr.flush()
    finally:
        os._exit(0)


signal.signal(signal.SIGTERM, _exit_now)
signal.signal(signal.SIGINT, _exit_now)

from pyftpdlib.authorizers import DummyAuthorizer  # noqa: E402
from pyftpdlib.handlers import DTPHandler, FTPHandler  # noqa: E402
from pyftpdlib.servers import FTPServer  # noqa: E402

FULL_PERMISSIONS = "elradfmwMT"
MODES = ("ok", "drop", "550", "552", "530", "stall", "idle421")
DROP_AFTER_BYTES = 7
IDLE_AFTER = 0.3  # seconds without a command before a session counts as idle (530, idle421)

CONTROL_FILE = None
LOGGED_IN = set()  # control handlers logged in and still open
STALLED = set()  # data handlers whose reading is suspended


def current_mode():
    try:
        with open(CONTROL_FILE, encoding="utf-8") as f:
            mode = f.read().strip()
    except OSError:
        return "ok"
    if not mode:
        return "ok"
    if mode not in MODES:
        event("?", "BADMODE", mode)
        return "ok"
    return mode


def event(mode, what, arg="", **extra):
    fields = " ".join(f"{k}={v}" for k, v in extra.items())
    line = f"EVENT {time.time():.3f} mode={mode} {what}"
    if arg:
        line += f" {arg}"
    if fields:
        line += f" {fields}"
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def reset(sock):
    """Makes close() send a RST instead of a FIN."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass


class FaultyDTP(DTPHandler):
    def enable_receiving(self, type, cmd):
        super().enable_receiving(type, cmd)
        if getattr(self.cmd_channel, "fault_stall", False):
            # Stop reading: take the socket out of the IO loop (no busy loop on a readable fd).
            self.del_channel()
            self.stalled_since = time.time()
            STALLED.add(self)
            event("stall", "STALL", self.cmd_channel.fault_path or "")

    def resume(self, mode):
        STALLED.discard(self)
        self.cmd_channel.fault_stall = False
        if not self._closed:
            event(mode, "RESUME", self.cmd_channel.fault_path or "",
                  after=f"{time.time() - self.stalled_since:.3f}")
            self.add_channel(events=self.ioloop.READ)

    def handle_read(self):
        if getattr(self.cmd_channel, "fault_drop", False):
            try:
                chunk = self.recv(DROP_AFTER_BYTES)
            except OSError:
                chunk = b""
            if chunk and self.file_obj is not None:
                self.file_obj.write(chunk)
                self.file_obj.flush()
            event("drop", "DROP", self.cmd_channel.fault_path or "", bytes=len(chunk or b""))
            control = self.cmd_channel
            reset(self.socket)
            reset(control.socket)
            control.close()  # closes this data channel too
            return
        super().handle_read()

    handle_read_event = handle_read  # DTPHandler aliases the base method: re-alias to this one

    def close(self):
        STALLED.discard(self)
        super().close()


def make_handler(base):
    class FaultyHandler(base):
        log_cmds_list = list(base.log_cmds_list) + ["STOR", "APPE", "STOU", "RETR"]
        fault_mode = "ok"
        fault_drop = False
        fault_stall = False
        fault_path = None

        last_command = 0.0

        def pre_process_command(self, line, cmd, arg):
            self.last_command = time.time()
            self.fault_mode = current_mode()
            event(self.fault_mode, cmd, "" if cmd == "PASS" else arg)
            return super().pre_process_command(line, cmd, arg)

        def ftp_PASS(self, line):
            if self.fault_mode == "530" and not self.authenticated:
                event("530", "REFUSED", "PASS")
                self.handle_auth_failed("Login incorrect (fault injection).", line)
                return
            return super().ftp_PASS(line)

        def ftp_STOR(self, file, mode="w"):
            fault = self.fault_mode
            if fault in ("550", "552"):
                text = "Permission denied" if fault == "550" else "Exceeded storage allocation"
                event(fault, "REFUSED", "STOR")
                self.respond(f"{fault} {text} (fault injection).")
                return None
            self.fault_path = file
            self.fault_drop = fault == "drop"
            self.fault_stall = fault == "stall"
            return super().ftp_STOR(file, mode)

        def on_login(self, username):
            LOGGED_IN.add(self)

        def close(self):
            if not self._closed:
                LOGGED_IN.discard(self)
                data = self.data_channel
                stalled = data is not None and data in STALLED
                extra = {"stalled": 1, "after": f"{time.time() - data.stalled_since:.3f}"} if stalled else {}
                event(self.fault_mode, "CLOSED", self.fault_path or "", **extra)
            super().close()

        def is_idle(self):
            """No transfer under way and no command for IDLE_AFTER seconds (never between the
            commands of one upload)."""
            return (self.data_channel is None and self._in_dtp_queue is None
                    and self._out_dtp_queue is None and time.time() - self.last_command >= IDLE_AFTER)

    return FaultyHandler


def tick():
    """Every 0.1 s: resume stalled transfers once the mode is no longer 'stall'; in modes 530
    and idle421, close idle sessions that logged in earlier."""
    mode = current_mode()
    if mode != "stall":
        for dtp in list(STALLED):
            dtp.resume(mode)
    if mode in ("530", "idle421"):
        for handler in list(LOGGED_IN):
            if handler.is_idle():
                LOGGED_IN.discard(handler)
                event(mode, "KICK", handler.remote_ip or "")
                handler.fault_mode = mode
                if mode == "idle421":
                    handler.respond("421 Control connection timed out.")
                    handler.close_when_done()
                else:
                    handler.close()


def main():
    global CONTROL_FILE
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--root", required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--control", required=True, help="file holding the current mode")
    parser.add_argument("--no-rename", action="store_true", help="refuse RNFR/RNTO (550)")
    args = parser.parse_args()

    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format="faulty_ftp_server %(asctime)s %(message)s",
    )

    if not os.path.isdir(args.root):
        raise ValueError(f"root {args.root!r} is not a directory")
    CONTROL_FILE = args.control

    perm = FULL_PERMISSIONS.replace("f", "") if args.no_rename else FULL_PERMISSIONS
    authorizer = DummyAuthorizer()
    authorizer.add_user(args.user, args.password, os.path.abspath(args.root), perm=perm)

    handler = make_handler(FTPHandler)
    handler.dtp_handler = FaultyDTP
    handler.authorizer = authorizer
    handler.banner = "quantrac faulty test ftp ready"
    handler.passive_ports = None
    handler.masquerade_address = None
    handler.timeout = 60
    handler.auth_failed_timeout = 0.1

    server = FTPServer(("127.0.0.1", args.port), handler)
    port = server.socket.getsockname()[1]
    server.ioloop.call_every(0.1, tick)
    sys.stdout.write(f"READY {port}\n")
    sys.stdout.flush()
    event(current_mode(), "START", str(port))
    server.serve_forever(timeout=0.5, handle_exit=True)


if __name__ == "__main__":
    try:
        main()
    except Exception as exc:  # pylint: disable=broad-except
        sys.stderr.write(f"faulty_ftp_server: {type(exc).__name__}: {exc}\n")
        sys.stderr.flush()
        sys.exit(2)
