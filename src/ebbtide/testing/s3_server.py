"""A real S3 API on 127.0.0.1: moto's threaded server (dev extra), for the weight-staging tests and benchmark.

Usage::

    with LocalS3() as s3:
        s3.put("weights", "tiny.gguf", path)             # uploaded with a whole-object ChecksumSHA256
        env = s3.env()                                    # AWS_ENDPOINT_URL_S3 + dummy credentials for a child
        client = s3.client()                              # a boto3 client talking to it

Children given ``env()`` find the server through boto3's own ``AWS_ENDPOINT_URL_S3`` setting, exactly as a
deployment pointing at MinIO or another S3 API would.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from types import TracebackType
from typing import Any

__all__ = ["LocalS3"]


class LocalS3:
    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.endpoint = ""
        self._buckets: set[str] = set()

    def start(self) -> LocalS3:
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> LocalS3:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def env(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL_S3": self.endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def client(self) -> Any:
        import boto3

        env = self.env()
        return boto3.session.Session().client(
            "s3", endpoint_url=self.endpoint, region_name=env["AWS_DEFAULT_REGION"],
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        )  # fmt: skip

    def put(
        self, bucket: str, key: str, body: bytes | Path, *, checksum: bool = True, metadata_sha256: str | None = None
    ) -> str:
        """Upload ``body`` (one PUT); returns its sha256. ``checksum`` makes S3 record a whole-object
        ChecksumSHA256; ``metadata_sha256`` sets the ``sha256`` user metadata instead (or as well)."""
        data = body.read_bytes() if isinstance(body, Path) else body
        client = self.client()
        if bucket not in self._buckets:
            from botocore.exceptions import ClientError

            try:
                client.create_bucket(Bucket=bucket)
            except ClientError as exc:  # moto keeps its buckets per process, across server instances
                if exc.response.get("Error", {}).get("Code") not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    raise
            self._buckets.add(bucket)
        extra: dict[str, Any] = {"ChecksumAlgorithm": "SHA256"} if checksum else {}
        if metadata_sha256 is not None:
            extra["Metadata"] = {"sha256": metadata_sha256}
        client.put_object(Bucket=bucket, Key=key, Body=data, **extra)
        return hashlib.sha256(data).hexdigest()

    def url(self, bucket: str, key: str) -> str:
        return f"s3://{bucket}/{key}"
