#!/usr/bin/env python3
"""Modbus RTU-over-TCP peer for Quantrac tests: pymodbus 3.16 serving RTU frames (slave, function, data,
CRC16) on a TCP socket, like a serial device server in raw mode or a cellular DTU.

Usage:
    modbus_rtu_tcp_server.py --port PORT --spec SPEC.json      (PORT 0 = pick a free port)

SPEC.json is the format of modbus_server.py (whose device builder this reuses). Undefined addresses
answer exception 0x02; unknown device ids get no answer (the master times out), as on a real line.
Prints "READY <port>" once it accepts connections. SIGTERM / SIGINT exit at once.
"""

import argparse
import asyncio
import json
import logging
import os
import signal
import sys

# Foundation's Process starts children with SIGTERM/SIGINT blocked: unblock first.
signal.pthread_sigmask(signal.SIG_SETMASK, [])


def _exit_now(signum, _frame):
    try:
        sys.stderr.write(f"modbus_rtu_tcp_server: signal {signum}, exiting\n")
        sys.stderr.flush()
    finally:
        os._exit(0)


signal.signal(signal.SIGTERM, _exit_now)
signal.signal(signal.SIGINT, _exit_now)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from modbus_server import StrictSimCore, build_devices  # noqa: E402
from pymodbus import FramerType  # noqa: E402
from pymodbus.server import ModbusTcpServer  # noqa: E402


async def serve(devices, port):
    server = ModbusTcpServer(devices, framer=FramerType.RTU, address=("127.0.0.1", port), ignore_missing_devices=True)
    server.context = StrictSimCore(devices)
    await server.serve_forever(background=True)
    real_port = server.transport.sockets[0].getsockname()[1]
    for _ in range(100):
        try:
            _reader, writer = await asyncio.open_connection("127.0.0.1", real_port)
            writer.close()
            await writer.wait_closed()
            break
        except OSError:
            await asyncio.sleep(0.05)
    else:
        raise RuntimeError(f"cannot connect to own port {real_port}")
    sys.stdout.write(f"READY {real_port}\n")
    sys.stdout.flush()
    await asyncio.Event().wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--spec", required=True)
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(stream=sys.stderr, level=logging.DEBUG if args.verbose else logging.WARNING)
    if args.verbose:
        from pymodbus import pymodbus_apply_logging_config  # pylint: disable=import-outside-toplevel

        pymodbus_apply_logging_config(logging.DEBUG)
    with open(args.spec, encoding="utf-8") as f:
        devices = build_devices(json.load(f))
    asyncio.run(serve(devices, args.port))


if __name__ == "__main__":
    try:
        main()
    except Exception as exc:  # pylint: disable=broad-except
        sys.stderr.write(f"modbus_rtu_tcp_server: {type(exc).__name__}: {exc}\n")
        sys.stderr.flush()
        sys.exit(2)
