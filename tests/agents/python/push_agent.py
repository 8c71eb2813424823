"""A busy Python program profiled by the real pyroscope-io agent.

Usage: push_agent.py SERVER_URL APP_NAME SECONDS

pyroscope-io (1.4) embeds pyroscope-rs 2 and pushes gzip-compressed
push.v1 PushRequests over Connect; shutdown() sends the last profile.
"""

import sys
import time

import pyroscope


def kiln_py_fib(n):
    return n if n < 2 else kiln_py_fib(n - 1) + kiln_py_fib(n - 2)


def kiln_py_busy():
    return kiln_py_fib(18)


def main():
    url, app, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    pyroscope.configure(
        application_name=app,
        server_address=url,
        sample_rate=100,
        oncpu=True,
        gil_only=True,
        tags={"agent_test": "pyroscope-io"},
    )
    deadline = time.monotonic() + seconds
    total = 0
    while time.monotonic() < deadline:
        total += kiln_py_busy()
    pyroscope.shutdown()
    print("done", total)


if __name__ == "__main__":
    main()
