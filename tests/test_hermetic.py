"""The suite's own guard: under tests/hermetic.sh nothing past loopback is reachable."""
import os
import socket

import pytest


@pytest.mark.skipif(os.environ.get('HERMETIC_ACTIVE') != '1',
                    reason='not started through tests/hermetic.sh (make test)')
def test_only_loopback_is_reachable():
  with socket.socket() as server:
    server.bind(('127.0.0.1', 0))
    server.listen()
    with socket.create_connection(server.getsockname(), timeout=2):
      pass
  with pytest.raises(OSError):
    socket.getaddrinfo('pypi.org', 443)
