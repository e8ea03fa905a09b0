#!/usr/bin/env python3
"""Modbus peer for Quantrac tests: a pymodbus 3.16 simulator server (TCP or RTU).

Usage:
    modbus_server.py --tcp PORT --spec SPEC.json          (PORT 0 = pick a free port)
    modbus_server.py --rtu DEVICE [--baud 9600] --spec SPEC.json

SPEC.json:
    {"devices": {"1": {"holding": {"0": [1, 2, 3], "100": [7]}, "input": {"10": [5, 6]}}}}
    device id -> register kind ("holding" | "input") -> start address (protocol address,
    zero-based) -> list of uint16 values.

Behaviour:
  * Prints exactly one line "READY <port>" on stdout once the server accepts requests
    ("READY 0" for RTU).
  * Holding registers are writable (FC 6/16), input registers read-only by function code.
  * Any address not listed answers with exception 0x02 (illegal data address); this
    includes reads that start in a defined block and run past its end, and all coil and
    discrete-input requests.
  * A device id not listed is never answered on RTU (the master times out). On TCP it
    answers exception 0x0B (gateway target device failed to respond), like a TCP gateway
    whose serial device is absent; pass --silent-missing to make TCP not answer either.
  * SIGTERM / SIGINT exit at once (status 0).
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
        sys.stderr.write(f"modbus_server: signal {signum}, exiting\n")
        sys.stderr.flush()
    finally:
        os._exit(0)


signal.signal(signal.SIGTERM, _exit_now)
signal.signal(signal.SIGINT, _exit_now)

from pymodbus import FramerType  # noqa: E402
from pymodbus.constants import ExcCodes  # noqa: E402
from pymodbus.exceptions import NoSuchIdException  # noqa: E402
from pymodbus.server import ModbusSerialServer, ModbusTcpServer  # noqa: E402
from pymodbus.simulator import DataType, SimData, SimDevice  # noqa: E402
from pymodbus.simulator.simcore import SimCore  # noqa: E402


class StrictSimCore(SimCore):
    """SimCore that reports an unknown device id as NoSuchIdException.

    pymodbus' SimCore looks an unknown id up as device 0 and raises KeyError, which the
    request handler turns into exception 0x04 (device failure) - a real RS-485 line would
    stay silent instead. NoSuchIdException lets the server's ignore_missing_devices apply.
    """

    def _check(self, device_id):
        if device_id not in self.devices:
            raise NoSuchIdException(f"no device {device_id}")

    async def async_getValues(self, device_id, func_code, address, count=1):
        self._check(device_id)
        return await super().async_getValues(device_id, func_code, address, count)

    async def async_setValues(self, device_id, func_code, address, values):
        self._check(device_id)
        return await super().async_setValues(device_id, func_code, address, values)


async def _no_bits(function_code, _start, _address, _count, _registers, _values):
    """Device action: coils and discrete inputs are not part of the spec."""
    if function_code in (1, 2, 5, 15):
        return ExcCodes.ILLEGAL_ADDRESS
    return None


def _blocks(kind_spec):
    blocks = []
    for address, values in (kind_spec or {}).items():
        values = [int(v) for v in values]
        if not values:
            continue
        for v in values:
            if not 0 <= v <= 0xFFFF:
                raise ValueError(f"value {v} at {address} is not a uint16")
        blocks.append(SimData(int(address), values=values, datatype=DataType.REGISTERS))
    if not blocks:
        # pymodbus needs at least one block per kind: one invalid register.
        blocks.append(SimData(0, datatype=DataType.INVALID))
    return blocks


def build_devices(spec):
    devices = []
    for dev_id, dev_spec in sorted(spec.get("devices", {}).items(), key=lambda kv: int(kv[0])):
        unknown = set(dev_spec) - {"holding", "input"}
        if unknown:
            raise ValueError(f"device {dev_id}: unknown register kinds {sorted(unknown)}")
        # Placeholder bit blocks (pymodbus requires them); _no_bits refuses all access.
        coils = [SimData(0, values=[False] * 16, datatype=DataType.BITS)]
        discrete = [SimData(0, values=[False] * 16, datatype=DataType.BITS)]
        devices.append(
            SimDevice(
                int(dev_id),
                simdata=(coils, discrete, _blocks(dev_spec.get("holding")), _blocks(dev_spec.get("input"))),
                action=_no_bits,
            )
        )
    if not devices:
        raise ValueError("spec has no devices")
    return devices


def ready(port):
    sys.stdout.write(f"READY {port}\n")
    sys.stdout.flush()


async def serve_tcp(devices, port, silent_missing):
    server = ModbusTcpServer(devices, address=("127.0.0.1", port), ignore_missing_devices=silent_missing)
    server.context = StrictSimCore(devices)
    await server.serve_forever(background=True)
    real_port = server.transport.sockets[0].getsockname()[1]
    # Poll-connect to ourselves, so READY really means "accepting connections".
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
    ready(real_port)
    await asyncio.Event().wait()


async def serve_rtu(devices, device, baud):
    server = ModbusSerialServer(
        devices,
        framer=FramerType.RTU,
        port=device,
        baudrate=baud,
        bytesize=8,
        parity="N",
        stopbits=1,
        ignore_missing_devices=True,
    )
    server.context = StrictSimCore(devices)
    await server.serve_forever(background=True)
    if server.transport is None:
        raise RuntimeError(f"cannot open serial device {device}")
    ready(0)
    await asyncio.Event().wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--tcp", type=int, metavar="PORT")
    mode.add_argument("--rtu", metavar="DEVICE")
    parser.add_argument("--baud", type=int, default=9600)
    parser.add_argument("--spec", required=True)
    parser.add_argument("--silent-missing", action="store_true", help="TCP: do not answer unknown device ids")
    parser.add_argument("--verbose", action="store_true", help="pymodbus debug log on stderr")
    args = parser.parse_args()

    logging.basicConfig(stream=sys.stderr, level=logging.DEBUG if args.verbose else logging.WARNING)
    if args.verbose:
        from pymodbus import pymodbus_apply_logging_config  # pylint: disable=import-outside-toplevel

        pymodbus_apply_logging_config(logging.DEBUG)

    with open(args.spec, encoding="utf-8") as f:
        devices = build_devices(json.load(f))

    if args.tcp is not None:
        asyncio.run(serve_tcp(devices, args.tcp, args.silent_missing))
    else:
        asyncio.run(serve_rtu(devices, args.rtu, args.baud))


if __name__ == "__main__":
    try:
        main()
    except Exception as exc:  # pylint: disable=broad-except
        sys.stderr.write(f"modbus_server: {type(exc).__name__}: {exc}\n")
        sys.stderr.flush()
        sys.exit(2)
