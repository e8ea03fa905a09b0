#!/usr/bin/env python3
"""Reads the kernel's clock synchronisation state with adjtimex(2), as an independent check of
quantracd's clock monitor: `struct timex` is declared here from <sys/timex.h> with ctypes.

Usage: clock_sync.py
Prints one line `synchronized=<0|1> maxerror_us=<N> status=0x<hex> state=<return value>` and exits 0;
exits 1 with the errno text when the call is refused.
"""
import ctypes
import ctypes.util
import os
import sys

c_long = ctypes.c_long


class Timeval(ctypes.Structure):
    _fields_ = [("tv_sec", c_long), ("tv_usec", c_long)]


class Timex(ctypes.Structure):
    _fields_ = [
        ("modes", ctypes.c_uint), ("offset", c_long), ("freq", c_long), ("maxerror", c_long),
        ("esterror", c_long), ("status", ctypes.c_int), ("constant", c_long), ("precision", c_long),
        ("tolerance", c_long), ("time", Timeval), ("tick", c_long), ("ppsfreq", c_long),
        ("jitter", c_long), ("shift", ctypes.c_int), ("stabil", c_long), ("jitcnt", c_long),
        ("calcnt", c_long), ("errcnt", c_long), ("stbcnt", c_long), ("tai", ctypes.c_int),
        ("_padding", ctypes.c_int * 11),
    ]


STA_UNSYNC = 0x0040
TIME_ERROR = 5

libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
tx = Timex()  # modes = 0: read only
state = libc.adjtimex(ctypes.byref(tx))
if state < 0:
    print(os.strerror(ctypes.get_errno()), file=sys.stderr)
    sys.exit(1)
synced = not (tx.status & STA_UNSYNC) and state != TIME_ERROR
print(f"synchronized={int(synced)} maxerror_us={tx.maxerror} status=0x{tx.status:x} state={state}")
