"""The measured models: PyTorch definitions, their TF mirrors, export for every server, parity."""
