"""What a stack says about model storage: the JuiceFS metadata engine and object store (in the cluster or external),
the client cache on GPU nodes, and how weights get into the volume, per model if need be."""

from typing import Literal

from pydantic import AnyHttpUrl, Field, SecretStr, model_validator

from components.args import ArgsModel, DnsLabel, Quantity, problems
from components.model_serving.args import ModelArgs
from components.model_storage.volume import is_repo_id

# Weights, config and tokenizer in the formats vLLM and TGI load; not the duplicate PyTorch .bin or original/.pth.
DEFAULT_INCLUDE = ["*.json", "*.safetensors", "tokenizer*", "*.model", "*.txt", "*.jinja"]


class RedisArgs(ArgsModel):
    """JuiceFS metadata: Valkey in the cluster, or an external Redis (its password set as a Pulumi secret)."""

    kind: Literal["valkey", "external"] = "valkey"
    url: str | None = Field(None, pattern=r"^rediss?://[^:@/]+(:[0-9]+)?(/[0-9]+)?$")
    password: SecretStr | None = None
    storage_size: Quantity = "10Gi"
    memory_mib: int = Field(2048, ge=256)

    @model_validator(mode="after")
    def _url_only_for_external(self) -> "RedisArgs":
        found = []
        if (self.kind == "external") != (self.url is not None):
            found.append(("url", "required when kind is external, and only then (redis://host:port/db)"))
        if self.kind != "external" and self.password is not None:
            found.append(("password", "only for kind external: the in-cluster password is generated"))
        if found:
            raise problems(found)
        return self


class ObjectStoreArgs(ArgsModel):
    """Where JuiceFS keeps its data blocks. SeaweedFS by default: MinIO's community images are gone."""

    kind: Literal["seaweedfs", "minio", "external"] = "seaweedfs"
    endpoint: AnyHttpUrl | None = None
    bucket: DnsLabel = "llm-models"
    region: str | None = Field(None, pattern=r"^[a-z0-9-]+$")
    access_key: SecretStr | None = None
    secret_key: SecretStr | None = None
    # Disk of the in-cluster store; defaults to the volume size.
    storage_size: Quantity | None = None

    @model_validator(mode="after")
    def _endpoint_only_for_external(self) -> "ObjectStoreArgs":
        external = self.kind == "external"
        found = []
        if external != (self.endpoint is not None):
            found.append(("endpoint", "required when kind is external, and only then"))
        for key, value in (("accessKey", self.access_key), ("secretKey", self.secret_key)):
            if external and value is None:
                found.append((key, "required when kind is external (set it as a Pulumi secret)"))
            if not external and value is not None:
                found.append((key, "only for kind external: in-cluster keys are generated"))
        if found:
            raise problems(found)
        return self


class CacheArgs(ArgsModel):
    """JuiceFS client cache on each GPU node, sized for large read-mostly weight files."""

    dir: str = Field("/var/jfsCache", pattern=r"^/")
    size_mib: int = Field(102400, ge=1024)
    buffer_size_mib: int = Field(1024, ge=64)
    prefetch: int = Field(3, ge=0, le=64)


class LoaderArgs(ArgsModel):
    """How weights get into the volume; entries of `modelStorage.models` override these per model."""

    skip_download: bool = False  # air-gapped clusters: users copy the weights themselves
    warmup: bool = False  # read the weights on every GPU node once downloaded, filling its JuiceFS cache
    hf_endpoint: AnyHttpUrl = AnyHttpUrl("https://huggingface.co")
    hf_token: SecretStr | None = None
    include: list[str] = Field(default_factory=lambda: list(DEFAULT_INCLUDE), min_length=1)


class ModelWeightsArgs(ArgsModel):
    name: DnsLabel  # a models[].name
    revision: str = Field("main", pattern=r"^[A-Za-z0-9._/-]+$")
    skip_download: bool | None = None
    warmup: bool | None = None
    include: list[str] | None = Field(None, min_length=1)


class ModelStorageArgs(ArgsModel):
    enabled: bool = True
    namespace: DnsLabel = "storage"
    volume_size: Quantity = "100Gi"
    redis: RedisArgs = RedisArgs()
    object_store: ObjectStoreArgs = ObjectStoreArgs()
    cache: CacheArgs = CacheArgs()
    loader: LoaderArgs = LoaderArgs()
    models: list[ModelWeightsArgs] = Field(default_factory=list)


def storage_problems(args: ModelStorageArgs, models: list[ModelArgs]) -> list[tuple[str, str]]:
    """What the stack config must also agree on: per-model entries name a model, model ids make folder names."""
    if not args.enabled:
        return []
    names = {m.name for m in models}
    found = [
        (f"modelStorage.models[{i}].name", f"no model named '{entry.name}'")
        for i, entry in enumerate(args.models)
        if entry.name not in names
    ]
    found += [
        (f"models[{i}].modelID", "must be a Hugging Face repository id (org/name): it names the weights' folder")
        for i, m in enumerate(models)
        if not is_repo_id(m.model_id)
    ]
    return found
