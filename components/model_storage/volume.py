"""What model servers see of the storage: the claim holding the weights in each model namespace, and each model's
folder inside it."""

import re

MODELS_CLAIM = "llm-models"
# Hugging Face repository ids: `org/name` of letters, digits, `.`, `_` and `-`; also a safe path in the volume.
REPO_ID = r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$"


def is_repo_id(model_id: str) -> bool:
    return re.fullmatch(REPO_ID, model_id) is not None and ".." not in model_id


def weights_path(model_id: str) -> str:
    """Where a model's weights live inside the claim: its repository id, e.g. `meta-llama/Llama-2-70b-chat-hf`."""
    if not is_repo_id(model_id):
        raise ValueError(f"not a Hugging Face repository id: {model_id!r}")
    return model_id
