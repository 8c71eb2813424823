"""A busy Python program for py-spy to record. Usage: busy.py SECONDS"""

import sys
import time


def kiln_spy_fib(n):
    return n if n < 2 else kiln_spy_fib(n - 1) + kiln_spy_fib(n - 2)


def kiln_spy_busy():
    return kiln_spy_fib(18)


deadline = time.monotonic() + float(sys.argv[1])
while time.monotonic() < deadline:
    kiln_spy_busy()
