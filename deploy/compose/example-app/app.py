"""A CPU-busy example service profiled by the pyroscope-io agent.

It pushes a CPU profile every 10 s to PYROSCOPE_SERVER_ADDRESS (Kiln's
HTTP port) as service PYROSCOPE_APPLICATION_NAME. With EXAMPLE_APP_SECONDS
set it stops after that many seconds (the deploy tests use this); otherwise
it runs until stopped.
"""

import hashlib
import os
import signal
import sys
import time

import pyroscope


def fibonacci(n):
    return n if n < 2 else fibonacci(n - 1) + fibonacci(n - 2)


def handle_request(i):
    # Two "endpoints" with different costs, so the flame graph has shape.
    if i % 3 == 0:
        return hashlib.sha256(str(i).encode() * 2000).hexdigest()
    return fibonacci(17)


def main():
    pyroscope.configure(
        application_name=os.environ.get("PYROSCOPE_APPLICATION_NAME", "example-app"),
        server_address=os.environ.get("PYROSCOPE_SERVER_ADDRESS", "http://localhost:4040"),
        # For a Kiln with auth on: a credential with the write scope.
        basic_auth_username=os.environ.get("PYROSCOPE_BASIC_AUTH_USER", ""),
        basic_auth_password=os.environ.get("PYROSCOPE_BASIC_AUTH_PASSWORD", ""),
        sample_rate=100,
        tags={"env": os.environ.get("EXAMPLE_APP_ENV", "compose")},
    )
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    seconds = float(os.environ.get("EXAMPLE_APP_SECONDS", "0"))
    deadline = time.monotonic() + seconds if seconds > 0 else None
    i = 0
    try:
        while deadline is None or time.monotonic() < deadline:
            handle_request(i)
            i += 1
    finally:
        pyroscope.shutdown()
    print("handled", i, "requests")


if __name__ == "__main__":
    main()
