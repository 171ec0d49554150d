"""S3 sync of project folders: the library behind s3utils.py (keys mirror project paths).

It imports nothing from kube/ and boto3 only when an operation runs; it prints nothing (progress goes to a
callback). Modules: errors, settings, selection (local files), landing (where a download is written), etags,
transfer (records and events), bucket, backend_boto3 / backend_s5cmd, sync (planning and running), checkpoint;
console, menu and cli are the command line's side.
"""
