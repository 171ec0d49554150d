"""S3 sync for a project folder: the s5cmd binary when on PATH, boto3 otherwise. (Issue 4.)"""
