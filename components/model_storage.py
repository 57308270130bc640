"""Model storage: JuiceFS on a Redis-protocol metadata engine and an S3-compatible store (config; component to come)."""

from typing import Literal

from pydantic import AnyHttpUrl, Field, model_validator

from components.args import ArgsModel, DnsLabel, Quantity, problems


class RedisArgs(ArgsModel):
    """JuiceFS metadata: Valkey in the cluster, or an external Redis (its password set as a Pulumi secret)."""

    kind: Literal["valkey", "external"] = "valkey"
    url: str | None = Field(None, pattern=r"^rediss?://[^:@/]+(:[0-9]+)?(/[0-9]+)?$")
    storage_size: Quantity = "10Gi"

    @model_validator(mode="after")
    def _url_only_for_external(self) -> "RedisArgs":
        if (self.kind == "external") != (self.url is not None):
            raise problems([("url", "required when kind is external, and only then (redis://host:port/db)")])
        return self


class ObjectStoreArgs(ArgsModel):
    """Where JuiceFS keeps its data blocks. SeaweedFS by default: MinIO's community images are gone."""

    kind: Literal["seaweedfs", "minio", "external"] = "seaweedfs"
    endpoint: AnyHttpUrl | None = None
    bucket: DnsLabel = "llm-models"
    region: str | None = None

    @model_validator(mode="after")
    def _endpoint_only_for_external(self) -> "ObjectStoreArgs":
        if (self.kind == "external") != (self.endpoint is not None):
            raise problems([("endpoint", "required when kind is external, and only then")])
        return self


class CacheArgs(ArgsModel):
    """JuiceFS client cache on each GPU node, sized for large read-mostly weight files."""

    dir: str = Field("/var/jfsCache", pattern=r"^/")
    size_mib: int = Field(102400, ge=1024)
    buffer_size_mib: int = Field(1024, ge=64)
    prefetch: int = Field(3, ge=0, le=64)


class ModelStorageArgs(ArgsModel):
    enabled: bool = True
    namespace: DnsLabel = "storage"
    volume_size: Quantity = "100Gi"
    redis: RedisArgs = RedisArgs()
    object_store: ObjectStoreArgs = ObjectStoreArgs()
    cache: CacheArgs = CacheArgs()
