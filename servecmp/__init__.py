"""servecmp: one model behind TorchServe and TF Serving, over REST and gRPC, measured side by side."""

__version__ = "0.1.0"
