"""The Open Inference Protocol (v2) as every OIP server's adapter declares it: one REST and one
gRPC ``ProtocolSpec`` naming the shared OIP clients. KServe, Triton and Ray Serve list these
instead of repeating them; a server with extra encodings adds them in front (KServe's v1 JSON).

Importing this module stays cheap: the clients load only when a target's client is built.
"""

from __future__ import annotations

from servecmp.experiment import Encoding, Protocol
from servecmp.servers.base import ProtocolSpec

OIP_REST_CLIENT = "servecmp.load.clients.oip_rest:OipRestClient"
OIP_GRPC_CLIENT = "servecmp.load.clients.oip_grpc:OipGrpcClient"

# JSON tensors first (the fair default every OIP server answers), then the binary tensor
# extension (JSON header + raw little-endian tensor bytes), a labelled native extra.
OIP_REST_ENCODINGS: tuple[Encoding, ...] = (Encoding.oip, Encoding.oip_binary)

OIP_REST = ProtocolSpec(Protocol.rest, OIP_REST_ENCODINGS, OIP_REST_CLIENT)
OIP_GRPC = ProtocolSpec(Protocol.grpc, (Encoding.oip,), OIP_GRPC_CLIENT)
OIP_PROTOCOLS: tuple[ProtocolSpec, ...] = (OIP_REST, OIP_GRPC)


def oip_protocols(*rest_first: Encoding) -> tuple[ProtocolSpec, ...]:
    """The OIP pair, with ``rest_first`` REST encodings (served by the same client) in front:
    the first encoding listed is the server's fair default over REST."""
    if not rest_first:
        return OIP_PROTOCOLS
    rest = ProtocolSpec(Protocol.rest, (*rest_first, *OIP_REST_ENCODINGS), OIP_REST_CLIENT)
    return (rest, OIP_GRPC)
