import socket

import pytest


def test_network_beyond_localhost_fails_the_test() -> None:
    with pytest.raises(AssertionError, match="network"):
        socket.create_connection(("api.openai.com", 443), timeout=1)
    with pytest.raises(AssertionError, match="network"):
        socket.socket().connect(("8.8.8.8", 53))
