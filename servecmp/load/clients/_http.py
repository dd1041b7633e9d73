"""Keep-alive HTTP/1.1 POST over geventhttpclient (the client Locust's FastHttpUser uses).

Outside a gevent-patched process it still works: gevent runs its hub in the calling thread.
"""

from __future__ import annotations

from geventhttpclient import HTTPClient
from geventhttpclient.response import HTTPConnectionClosed, HTTPParseError

from servecmp.load.clients.base import TransportError, host_port


class HttpConnection:
    """A pool of ``concurrency`` persistent connections to one ``host:port``."""

    def __init__(self, address: str, timeout_s: float, *, concurrency: int = 1) -> None:
        self.host, self.port = host_port(address, 80)
        self._client = HTTPClient(
            self.host,
            port=self.port,
            connection_timeout=timeout_s,
            network_timeout=timeout_s,
            concurrency=concurrency,
        )

    def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        """(status, body) for any status; network problems -> TransportError(connect|timeout)."""
        status, data, _ = self._request(method, path, body, headers, None)
        return status, data

    def _request(
        self,
        method: str,
        path: str,
        body: bytes,
        headers: dict[str, str] | None,
        want: str | None,
    ) -> tuple[int, bytes, str | None]:
        try:
            response = self._client.request(method, path, body=body, headers=headers)
            try:
                data = response.read()
                found = response.get(want) if want else None
                value = found[-1] if isinstance(found, list) else found  # a repeated header
            finally:
                response.release()
            return response.status_code, data, value
        except TimeoutError as err:
            raise TransportError("timeout", f"{method} {path}: {err or 'timed out'}") from None
        except ConnectionRefusedError as err:
            raise TransportError("connect", f"{self.host}:{self.port}: {err}") from None
        except OSError as err:
            raise TransportError("connect", f"{self.host}:{self.port}: {err!r}") from None
        except HTTPConnectionClosed as err:
            raise TransportError("connect", f"{method} {path}: connection closed: {err}") from None
        except HTTPParseError as err:
            raise TransportError("decode", f"{method} {path}: bad HTTP response: {err}") from None

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> bytes:
        """The response body of a 2xx; any other status -> TransportError(http_4xx|http_5xx)."""
        return self.post_with_header(path, body, headers, None)[0]

    def post_with_header(
        self, path: str, body: bytes, headers: dict[str, str], want: str | None
    ) -> tuple[bytes, str | None]:
        """As :meth:`post`, with the value of the response header ``want`` (None if absent)."""
        status, data, value = self._request("POST", path, body, headers, want)
        if status >= 300:
            kind = (
                "http_4xx" if 400 <= status < 500 else ("http_5xx" if status >= 500 else "http_3xx")
            )
            snippet = data[:200].decode("utf-8", "replace")
            raise TransportError(kind, f"HTTP {status} from POST {path}: {snippet}")
        return data, value

    def close(self) -> None:
        self._client.close()
