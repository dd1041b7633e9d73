"""Stub registry (replaced by the models work)."""
def model_names() -> list[str]:
    return ["resnet", "tiny"]
