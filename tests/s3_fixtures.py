"""S3 test servers (SeaweedFS, moto) started once per session on 127.0.0.1."""
