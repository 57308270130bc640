"""What model servers see of the storage: the claim holding the weights in each model namespace, where pods mount
it, the user that owns the weights, and each model's folder inside it."""

import re
from dataclasses import dataclass

MODELS_CLAIM = "llm-models"
MODELS_MOUNT = "/models"
WEIGHTS_UID = 10001  # the loader writes the weights as this user; model servers run as it and read them
# Hugging Face repository ids: `org/name` of letters, digits, `.`, `_` and `-`; also a safe path in the volume.
REPO_ID = r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$"


@dataclass(frozen=True)
class WeightsVolume:
    """The claim holding the weights in the model's namespace, and the model's folder inside it."""

    claim: str
    sub_path: str


def is_repo_id(model_id: str) -> bool:
    return re.fullmatch(REPO_ID, model_id) is not None and ".." not in model_id


def weights_path(model_id: str) -> str:
    """Where a model's weights live inside the claim: its repository id, e.g. `meta-llama/Llama-2-70b-chat-hf`."""
    if not is_repo_id(model_id):
        raise ValueError(f"not a Hugging Face repository id: {model_id!r}")
    return model_id
