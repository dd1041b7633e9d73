"""servecmp: one model behind several model servers (each a ServerAdapter in servecmp/servers/),
over REST and gRPC, measured side by side."""

__version__ = "0.1.0"
